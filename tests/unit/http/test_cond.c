/*
 * test_cond.c - unit tests for validators and conditional requests
 * (src/http/cond.c): ETag generation, HTTP-date parsing in all three
 * RFC 9110 formats with every range boundary, the §8.8.3.2 comparison
 * table, §13.2.2 precedence between the four preconditions, and If-Range.
 *
 * Every input is handed over as a heap block of exactly its length, so
 * ASan reports any read past the end (nothing may rely on a NUL), and
 * truncations of valid dates at every length must be rejected.
 */
#include "hotpath/alloc.h"
#include "hotpath/clock.h"
#include "hotpath/http_cond.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Sun, 06 Nov 1994 08:49:37 GMT, the RFC's example date. */
#define T1994 784111777LL

static char *dup_exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

static int parse_date(const char *s, int64_t *t)
{
    size_t n = strlen(s);
    char *c = dup_exact(s, n);
    int rc = hp_cond_date_parse(c, n, t);
    free(c);
    return rc;
}

static int64_t date_ok(const char *s)
{
    int64_t t = INT64_MIN;
    int rc = parse_date(s, &t);
    if (rc != 0)
        fail_msg("rejected valid date \"%s\"", s);
    return t;
}

static void date_bad(const char *s)
{
    int64_t t = 12345;
    if (parse_date(s, &t) != -EINVAL)
        fail_msg("accepted invalid date \"%s\"", s);
    assert_int_equal(t, 12345); /* untouched on failure */
}

/* Evaluates with heap copies of each present header. */
static int eval(const char *im, const char *inm, const char *ims, const char *ius,
                const char *etag, int64_t mtime)
{
    const char *in[5] = {im, inm, ims, ius, etag};
    char *c[5];
    size_t n[5];
    for (int i = 0; i < 5; i++) {
        n[i] = in[i] ? strlen(in[i]) : 0;
        c[i] = in[i] ? dup_exact(in[i], n[i]) : NULL;
    }
    int rc = hp_cond_evaluate(c[0], n[0], c[1], n[1], c[2], n[2], c[3], n[3], c[4], n[4], mtime);
    for (int i = 0; i < 5; i++)
        free(c[i]);
    return rc;
}

static bool if_range(const char *ir, const char *etag, int64_t mtime, int64_t now)
{
    size_t n = ir ? strlen(ir) : 0, en = etag ? strlen(etag) : 0;
    char *c = ir ? dup_exact(ir, n) : NULL, *e = etag ? dup_exact(etag, en) : NULL;
    bool r = hp_cond_if_range(c, n, e, en, mtime, now);
    free(c);
    free(e);
    return r;
}

/* ---- ETag ---------------------------------------------------------------- */

static void test_etag_format(void **state)
{
    (void)state;
    char b[HP_ETAG_MAX];
    assert_int_equal(hp_cond_etag_make(b, sizeof(b), 0, 0, 0), 5);
    assert_string_equal(b, "\"0-0\"");
    /* 1 s + 5 ns = 1000000005 ns = 0x3b9aca05 */
    assert_int_equal(hp_cond_etag_make(b, sizeof(b), 0x1234, 1, 5), 15);
    assert_string_equal(b, "\"1234-3b9aca05\"");
    /* A typical file: 1 MiB, mtime 1994-11-06 with nanoseconds. */
    size_t n = hp_cond_etag_make(b, sizeof(b), 1048576, T1994, 123456789);
    char want[64];
    snprintf(want, sizeof(want), "\"100000-%llx\"",
             (unsigned long long)(T1994 * 1000000000ull + 123456789ull));
    assert_int_equal(n, strlen(want));
    assert_string_equal(b, want);
    /* Never weak. */
    assert_int_equal(b[0], '"');
}

static void test_etag_longest_and_cap(void **state)
{
    (void)state;
    char b[HP_ETAG_MAX];
    /* -1 s + 999999999 ns = -1 ns = all ones modulo 2^64: the longest tag. */
    size_t n = hp_cond_etag_make(b, sizeof(b), UINT64_MAX, -1, 999999999);
    assert_int_equal(n, 35);
    assert_true(n + 1 <= HP_ETAG_MAX);
    assert_string_equal(b, "\"ffffffffffffffff-ffffffffffffffff\"");
    /* Exactly enough room (length + NUL), and one byte short. */
    memset(b, 'z', sizeof(b));
    assert_int_equal(hp_cond_etag_make(b, 35, UINT64_MAX, -1, 999999999), 0);
    assert_int_equal(b[0], 'z'); /* untouched */
    assert_int_equal(hp_cond_etag_make(b, 36, UINT64_MAX, -1, 999999999), 35);
    assert_int_equal(b[35], '\0');
    assert_int_equal(hp_cond_etag_make(NULL, 100, 1, 1, 1), 0);
    assert_int_equal(hp_cond_etag_make(b, 0, 1, 1, 1), 0);
}

static void test_etag_distinct(void **state)
{
    (void)state;
    char a[HP_ETAG_MAX], b[HP_ETAG_MAX];
    hp_cond_etag_make(a, sizeof(a), 100, 1000, 1);
    hp_cond_etag_make(b, sizeof(b), 100, 1000, 2);
    assert_string_not_equal(a, b); /* nanoseconds count */
    hp_cond_etag_make(b, sizeof(b), 101, 1000, 1);
    assert_string_not_equal(a, b); /* size counts */
    hp_cond_etag_make(b, sizeof(b), 100, 1000, 1);
    assert_string_equal(a, b); /* deterministic */
    /* The tag is a well-formed strong entity-tag: it strongly matches
     * itself through If-Range and If-Match. */
    assert_true(if_range(a, a, 0, 10));
    assert_int_equal(eval(a, NULL, NULL, NULL, a, 0), 200);
}

/* ---- HTTP-date ----------------------------------------------------------- */

static void test_date_rfc_examples(void **state)
{
    (void)state;
    /* RFC 9110 §5.6.7: the same instant in the three formats. */
    assert_int_equal(date_ok("Sun, 06 Nov 1994 08:49:37 GMT"), T1994);
    assert_int_equal(date_ok("Sunday, 06-Nov-94 08:49:37 GMT"), T1994);
    assert_int_equal(date_ok("Sun Nov  6 08:49:37 1994"), T1994);
    /* asctime with a two-digit day, and with a zero-padded one (2DIGIT). */
    assert_int_equal(date_ok("Wed Nov 16 08:49:37 1994"), T1994 + 10 * 86400);
    assert_int_equal(date_ok("Sun Nov 06 08:49:37 1994"), T1994);
    assert_int_equal(date_ok("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
    assert_int_equal(date_ok("Wed, 31 Dec 1969 23:59:59 GMT"), -1);
    assert_int_equal(date_ok("Fri, 31 Dec 9999 23:59:59 GMT"), 253402300799LL);
    assert_int_equal(date_ok("Sat, 01 Jan 2000 00:00:00 GMT"), 946684800);
    assert_int_equal(date_ok("Tue, 19 Jan 2038 03:14:08 GMT"), 2147483648LL);
    /* Every long day name in RFC 850 form. */
    static const char *const days[] = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                       "Friday", "Saturday", "Sunday"};
    for (size_t i = 0; i < 7; i++) {
        char b[64];
        snprintf(b, sizeof(b), "%s, 06-Nov-94 08:49:37 GMT", days[i]);
        assert_int_equal(date_ok(b), T1994);
    }
    /* The weekday is not checked against the date. */
    assert_int_equal(date_ok("Mon, 06 Nov 1994 08:49:37 GMT"), T1994);
}

static void test_date_rfc850_year(void **state)
{
    (void)state;
    /* Pivot at 70: 00-69 are 20xx, 70-99 are 19xx. */
    assert_int_equal(date_ok("Thursday, 01-Jan-70 00:00:00 GMT"), 0);
    assert_int_equal(date_ok("Friday, 31-Dec-99 23:59:59 GMT"), 946684799);
    assert_int_equal(date_ok("Saturday, 01-Jan-00 00:00:00 GMT"), 946684800);
    assert_int_equal(date_ok("Sunday, 01-Jan-69 00:00:00 GMT"), 3124224000LL);
}

static void test_date_ranges(void **state)
{
    (void)state;
    /* Leap years: divisible by 4, except centuries, except every 400th. */
    date_ok("Tue, 29 Feb 2000 00:00:00 GMT");
    date_ok("Thu, 29 Feb 2024 00:00:00 GMT");
    date_bad("Thu, 29 Feb 1900 00:00:00 GMT");
    date_bad("Wed, 29 Feb 2023 00:00:00 GMT");
    date_bad("Wed, 30 Feb 2000 00:00:00 GMT");
    assert_int_equal(date_ok("Wed, 01 Mar 2000 00:00:00 GMT") -
                         date_ok("Mon, 28 Feb 2000 00:00:00 GMT"),
                     2 * 86400);
    /* Day 31 only in long months, day 0 never. */
    date_ok("Mon, 31 Jan 2022 00:00:00 GMT");
    date_bad("Sat, 31 Apr 2022 00:00:00 GMT");
    date_ok("Sat, 30 Apr 2022 00:00:00 GMT");
    date_bad("Sat, 31 Jun 2022 00:00:00 GMT");
    date_bad("Sat, 31 Sep 2022 00:00:00 GMT");
    date_bad("Sat, 31 Nov 2022 00:00:00 GMT");
    date_ok("Sat, 31 Dec 2022 00:00:00 GMT");
    date_bad("Sat, 00 Dec 2022 00:00:00 GMT");
    date_bad("Sat, 32 Dec 2022 00:00:00 GMT");
    date_bad("Sun Nov  0 08:49:37 1994");
    date_bad("Sunday, 31-Nov-94 08:49:37 GMT");
    /* Time of day. */
    assert_int_equal(date_ok("Sun, 06 Nov 1994 23:59:59 GMT"), T1994 - 31777 + 86399);
    date_bad("Sun, 06 Nov 1994 24:00:00 GMT");
    date_bad("Sun, 06 Nov 1994 08:60:00 GMT");
    /* A leap second is the first second of the next minute. */
    assert_int_equal(date_ok("Sun, 06 Nov 1994 08:49:60 GMT"),
                     date_ok("Sun, 06 Nov 1994 08:50:00 GMT"));
    date_bad("Sun, 06 Nov 1994 08:49:61 GMT");
    date_bad("Sun Nov  6 24:49:37 1994");
    date_bad("Sunday, 06-Nov-94 08:49:99 GMT");
}

static void test_date_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "Sun, 06 Nov 1994 08:49:37 gmt",  /* case-sensitive */
        "Sun, 06 nov 1994 08:49:37 GMT",
        "sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sux, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nox 1994 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT",   /* 2DIGIT day */
        "Sun,  6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT ", /* no trailing bytes */
        " Sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMTX",
        "Sun, 06 Nov 1994 08-49-37 GMT",
        "Sun, 06-Nov-1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 +0000",
        "Sun, 06 Nov 199a 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:4a:37 GMT",
        "Sun  06 Nov 1994 08:49:37 GMT",
        "Sun,06 Nov 1994 08:49:37 GMT ",
        "Sunday, 06-Nov-94 08:49:37 GM",
        "Sunday, 06 Nov 94 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sun, 06-Nov-94 08:49:37 GMT",    /* short name in RFC 850 form */
        "Sundae, 06-Nov-94 08:49:37 GMT",
        "Funday, 06-Nov-94 08:49:37 GMT",
        "sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994",
        "Sun Nov  6 08:49:37 94",
        "Sun Nov  6 08:49:37 1994 GMT",
        "Sun Nov x6 08:49:37 1994",
        "Sun Nov  6 08:49:37 19 4",
        "Sun, 06 Nov 1994 08:49:37 GMT; length=1234",
        "784111777",
        "Sun Nov  6 08:49:37 1994\r",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        date_bad(bad[i]);
    int64_t t;
    assert_int_equal(hp_cond_date_parse(NULL, 0, &t), -EINVAL);
}

/* Every proper prefix of a valid date is invalid and is read within its
 * bounds (ASan checks the exact-size copies). */
static void test_date_truncated(void **state)
{
    (void)state;
    static const char *const good[] = {"Sun, 06 Nov 1994 08:49:37 GMT",
                                       "Sunday, 06-Nov-94 08:49:37 GMT",
                                       "Wednesday, 09-Nov-94 08:49:37 GMT",
                                       "Sun Nov  6 08:49:37 1994"};
    for (size_t g = 0; g < 4; g++) {
        size_t n = strlen(good[g]);
        for (size_t k = 0; k < n; k++) {
            char *c = dup_exact(good[g], k);
            int64_t t;
            assert_int_equal(hp_cond_date_parse(c, k, &t), -EINVAL);
            free(c);
        }
    }
}

/* hp_clock_date_format (src/core/clock.c) and the parser are inverses. */
static void test_date_roundtrip(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t sec = (int64_t)(x % 253402300800ull);
        if (i < 4)
            sec = (int64_t[]){0, 951782400, 253402300799LL, 4107542400LL}[i];
        char b[HP_CLOCK_DATE_LEN + 1];
        hp_clock_date_format(sec, b);
        int64_t t;
        assert_int_equal(hp_cond_date_parse(b, HP_CLOCK_DATE_LEN, &t), 0);
        assert_int_equal(t, sec);
    }
}

/* ---- entity-tag comparison ---------------------------------------------- */

/* RFC 9110 §8.8.3.2: strong comparison through If-Match (match -> 200,
 * else 412), weak comparison through If-None-Match (match -> 304). */
static void test_etag_comparison_table(void **state)
{
    (void)state;
    static const struct {
        const char *a, *b;
        bool strong, weak;
    } table[] = {
        {"W/\"1\"", "W/\"1\"", false, true},
        {"W/\"1\"", "W/\"2\"", false, false},
        {"W/\"1\"", "\"1\"", false, true},
        {"\"1\"", "\"1\"", true, true},
        /* and the same rows with the roles swapped */
        {"\"1\"", "W/\"1\"", false, true},
        {"W/\"2\"", "W/\"1\"", false, false},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        assert_int_equal(eval(table[i].a, NULL, NULL, NULL, table[i].b, 0),
                         table[i].strong ? 200 : 412);
        assert_int_equal(eval(NULL, table[i].a, NULL, NULL, table[i].b, 0),
                         table[i].weak ? 304 : 200);
        /* If-Range uses the strong comparison too. */
        assert_int_equal(if_range(table[i].a, table[i].b, 0, 10), table[i].strong);
    }
    /* Opaque tags compare byte for byte: case and length matter. */
    assert_int_equal(eval(NULL, "\"abc\"", NULL, NULL, "\"ABC\"", 0), 200);
    assert_int_equal(eval(NULL, "\"ab\"", NULL, NULL, "\"abc\"", 0), 200);
    assert_int_equal(eval(NULL, "\"\"", NULL, NULL, "\"\"", 0), 304);
    /* obs-text is an etagc. */
    assert_int_equal(eval(NULL, "\"\xc3\xa9t\xc3\xa9\"", NULL, NULL, "\"\xc3\xa9t\xc3\xa9\"", 0),
                     304);
}

/* ---- If-None-Match and If-Modified-Since --------------------------------- */

static void test_if_none_match(void **state)
{
    (void)state;
    const char *tag = "\"5-abc\"";
    assert_int_equal(eval(NULL, "\"5-abc\"", NULL, NULL, tag, 0), 304);
    assert_int_equal(eval(NULL, "\"5-abd\"", NULL, NULL, tag, 0), 200);
    assert_int_equal(eval(NULL, "W/\"5-abc\"", NULL, NULL, tag, 0), 304);
    /* Lists: anywhere in the list, with OWS and empty elements. */
    assert_int_equal(eval(NULL, "\"a\", W/\"b\", \"5-abc\"", NULL, NULL, tag, 0), 304);
    assert_int_equal(eval(NULL, "\"a\",W/\"5-abc\"", NULL, NULL, tag, 0), 304);
    assert_int_equal(eval(NULL, ", ,\t\"5-abc\" ,", NULL, NULL, tag, 0), 304);
    assert_int_equal(eval(NULL, "\"a\", W/\"b\", \"c\"", NULL, NULL, tag, 0), 200);
    assert_int_equal(eval(NULL, "", NULL, NULL, tag, 0), 200);
    assert_int_equal(eval(NULL, " , ", NULL, NULL, tag, 0), 200);
    /* "*" matches any existing representation, even one without a tag. */
    assert_int_equal(eval(NULL, "*", NULL, NULL, tag, 0), 304);
    assert_int_equal(eval(NULL, " * ", NULL, NULL, tag, 0), 304);
    assert_int_equal(eval(NULL, "*", NULL, NULL, NULL, 0), 304);
    /* No tag of our own: only "*" can match. */
    assert_int_equal(eval(NULL, "\"5-abc\"", NULL, NULL, NULL, 0), 200);
    assert_int_equal(eval(NULL, "\"\"", NULL, NULL, NULL, 0), 200);
    /* A syntax error anywhere voids the list: never a 304 from garbage. */
    static const char *const bad[] = {
        "\"5-abc\" \"x\"", "\"5-abc\", *", "*, \"5-abc\"", "\"5-abc", "5-abc",
        "\"5-abc\", x",   "w/\"5-abc\"", "W\"5-abc\"",    "W/ \"5-abc\"", "\"5 abc\"",
        "**",             "\"5-abc\";",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(eval(NULL, bad[i], NULL, NULL, "\"5 abc\"", 0) +
                             eval(NULL, bad[i], NULL, NULL, tag, 0),
                         400);
    /* Truncated lists read in bounds. */
    const char *list = "\"a\", W/\"5-abc\"";
    for (size_t k = 0; k < strlen(list); k++) {
        char *c = dup_exact(list, k);
        assert_int_equal(hp_cond_evaluate(NULL, 0, c, k, NULL, 0, NULL, 0, tag, 7, 0), 200);
        free(c);
    }
}

static void test_if_modified_since(void **state)
{
    (void)state;
    const char *d = "Sun, 06 Nov 1994 08:49:37 GMT";
    /* equal -> not modified; file newer than the date -> 200; older -> 304 */
    assert_int_equal(eval(NULL, NULL, d, NULL, NULL, T1994), 304);
    assert_int_equal(eval(NULL, NULL, d, NULL, NULL, T1994 + 1), 200);
    assert_int_equal(eval(NULL, NULL, d, NULL, NULL, T1994 - 1), 304);
    /* The other two formats. */
    assert_int_equal(eval(NULL, NULL, "Sunday, 06-Nov-94 08:49:37 GMT", NULL, NULL, T1994), 304);
    assert_int_equal(eval(NULL, NULL, "Sun Nov  6 08:49:37 1994", NULL, NULL, T1994), 304);
    assert_int_equal(eval(NULL, NULL, "Sun Nov  6 08:49:36 1994", NULL, NULL, T1994), 200);
    /* Invalid dates are ignored. */
    assert_int_equal(eval(NULL, NULL, "yesterday", NULL, NULL, T1994), 200);
    assert_int_equal(eval(NULL, NULL, "Sun, 06 Nov 1994 08:49:37 GMT; length=5", NULL, NULL, 0),
                     200);
    assert_int_equal(eval(NULL, NULL, "", NULL, NULL, T1994), 200);
    assert_int_equal(eval(NULL, NULL, "Sun, 31 Nov 1994 08:49:37 GMT", NULL, NULL, 0), 200);
    /* If-None-Match present: If-Modified-Since is not looked at, whether
     * the tags match or not, and even when the list is malformed. */
    assert_int_equal(eval(NULL, "\"other\"", d, NULL, "\"x\"", T1994), 200);
    assert_int_equal(eval(NULL, "\"x\"", d, NULL, "\"x\"", T1994 + 100), 304);
    assert_int_equal(eval(NULL, "garbage", d, NULL, "\"x\"", T1994), 200);
    /* Nothing at all. */
    assert_int_equal(eval(NULL, NULL, NULL, NULL, "\"x\"", T1994), 200);
}

/* ---- If-Match and If-Unmodified-Since ------------------------------------ */

static void test_if_match(void **state)
{
    (void)state;
    const char *tag = "\"5-abc\"";
    assert_int_equal(eval("\"5-abc\"", NULL, NULL, NULL, tag, 0), 200);
    assert_int_equal(eval("\"x\", \"5-abc\"", NULL, NULL, NULL, tag, 0), 200);
    assert_int_equal(eval("\"x\"", NULL, NULL, NULL, tag, 0), 412);
    assert_int_equal(eval("W/\"5-abc\"", NULL, NULL, NULL, tag, 0), 412); /* strong only */
    assert_int_equal(eval("\"5-abc\"", NULL, NULL, NULL, "W/\"5-abc\"", 0), 412);
    assert_int_equal(eval("*", NULL, NULL, NULL, tag, 0), 200);
    assert_int_equal(eval("*", NULL, NULL, NULL, NULL, 0), 200);
    assert_int_equal(eval("\"5-abc\"", NULL, NULL, NULL, NULL, 0), 412);
    assert_int_equal(eval("", NULL, NULL, NULL, tag, 0), 412);
    assert_int_equal(eval("\"5-abc\" junk", NULL, NULL, NULL, tag, 0), 412);
    /* A malformed own tag never matches a list. */
    assert_int_equal(eval("\"5-abc\"", NULL, NULL, NULL, "5-abc", 0), 412);
}

static void test_if_unmodified_since(void **state)
{
    (void)state;
    const char *d = "Sun, 06 Nov 1994 08:49:37 GMT";
    assert_int_equal(eval(NULL, NULL, NULL, d, NULL, T1994), 200);
    assert_int_equal(eval(NULL, NULL, NULL, d, NULL, T1994 - 1), 200);
    assert_int_equal(eval(NULL, NULL, NULL, d, NULL, T1994 + 1), 412);
    assert_int_equal(eval(NULL, NULL, NULL, "not a date", NULL, T1994 + 1), 200);
    /* If-Match present: If-Unmodified-Since is not looked at. */
    assert_int_equal(eval("\"x\"", NULL, NULL, d, "\"x\"", T1994 + 1), 200);
}

/* §13.2.2: 412 conditions are evaluated before 304 conditions. */
static void test_precedence(void **state)
{
    (void)state;
    const char *d = "Sun, 06 Nov 1994 08:49:37 GMT";
    assert_int_equal(eval("\"no\"", "\"x\"", NULL, NULL, "\"x\"", T1994), 412);
    assert_int_equal(eval(NULL, "\"x\"", NULL, d, "\"x\"", T1994 + 1), 412);
    assert_int_equal(eval(NULL, NULL, d, d, "\"x\"", T1994 + 1), 412);
    /* Both pass: If-Match ok, then If-None-Match matches too -> 304. */
    assert_int_equal(eval("\"x\"", "\"x\"", NULL, NULL, "\"x\"", T1994), 304);
    assert_int_equal(eval("*", NULL, d, d, "\"x\"", T1994), 304);
}

/* ---- If-Range ------------------------------------------------------------ */

static void test_if_range(void **state)
{
    (void)state;
    const char *tag = "\"5-abc\"";
    const char *d = "Sun, 06 Nov 1994 08:49:37 GMT";
    int64_t now = T1994 + 3600;
    assert_true(if_range(NULL, tag, T1994, now)); /* absent */
    /* Entity tags: strong match only. */
    assert_true(if_range("\"5-abc\"", tag, T1994, now));
    assert_false(if_range("\"5-abd\"", tag, T1994, now));
    assert_false(if_range("W/\"5-abc\"", tag, T1994, now));
    assert_false(if_range("\"5-abc\"", "W/\"5-abc\"", T1994, now));
    assert_false(if_range("\"5-abc\"", NULL, T1994, now));
    assert_false(if_range("\"5-abc\", \"5-abc\"", tag, T1994, now)); /* one tag, not a list */
    assert_false(if_range("\"5-abc\"x", tag, T1994, now));
    assert_false(if_range("\"5-abc", tag, T1994, now));
    assert_false(if_range("*", tag, T1994, now));
    assert_false(if_range("", tag, T1994, now));
    assert_false(if_range("W", tag, T1994, now));
    /* Dates: exact equality, and mtime at least 1 s before now. */
    assert_true(if_range(d, tag, T1994, now));
    assert_true(if_range(d, NULL, T1994, T1994 + 1));
    assert_false(if_range(d, tag, T1994, T1994));     /* modified this second */
    assert_false(if_range(d, tag, T1994, T1994 - 5)); /* clock behind mtime */
    assert_false(if_range(d, tag, T1994 - 1, now));   /* later than mtime */
    assert_false(if_range(d, tag, T1994 + 1, now));   /* earlier than mtime */
    assert_true(if_range("Sunday, 06-Nov-94 08:49:37 GMT", tag, T1994, now));
    assert_true(if_range("Sun Nov  6 08:49:37 1994", tag, T1994, now));
    assert_false(if_range("Sun, 06 Nov 1994 08:49:37 GMT ", tag, T1994, now));
    /* Dates starting with W are dates, not weak tags. */
    int64_t wed = T1994 + 3 * 86400;
    assert_true(if_range("Wed, 09 Nov 1994 08:49:37 GMT", tag, wed, wed + 10));
    assert_true(if_range("Wednesday, 09-Nov-94 08:49:37 GMT", tag, wed, wed + 10));
}

/* Nothing here touches the heap: the allocation counter does not move and
 * every call succeeds while every allocation is made to fail. */
static void test_no_allocation(void **state)
{
    (void)state;
    uint64_t before = hp_alloc_count();
    hp_alloc_fail_after(1, 1);
    char b[HP_ETAG_MAX];
    int64_t t;
    static const char tag[] = "\"5-abc\"", d[] = "Sun, 06 Nov 1994 08:49:37 GMT";
    for (int i = 0; i < 1000; i++) {
        size_t n = hp_cond_etag_make(b, sizeof(b), (uint64_t)i, i, i);
        assert_int_equal(n, strlen(b));
        assert_int_equal(hp_cond_date_parse(d, sizeof(d) - 1, &t), 0);
        assert_int_equal(hp_cond_evaluate(NULL, 0, tag, 7, d, 29, NULL, 0, tag, 7, T1994), 304);
        assert_true(hp_cond_if_range(d, 29, tag, 7, T1994, T1994 + 1));
    }
    hp_alloc_fail_after(0, 0);
    assert_int_equal(hp_alloc_count(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_etag_format),
        cmocka_unit_test(test_etag_longest_and_cap),
        cmocka_unit_test(test_etag_distinct),
        cmocka_unit_test(test_date_rfc_examples),
        cmocka_unit_test(test_date_rfc850_year),
        cmocka_unit_test(test_date_ranges),
        cmocka_unit_test(test_date_malformed),
        cmocka_unit_test(test_date_truncated),
        cmocka_unit_test(test_date_roundtrip),
        cmocka_unit_test(test_etag_comparison_table),
        cmocka_unit_test(test_if_none_match),
        cmocka_unit_test(test_if_modified_since),
        cmocka_unit_test(test_if_match),
        cmocka_unit_test(test_if_unmodified_since),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_if_range),
        cmocka_unit_test(test_no_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
