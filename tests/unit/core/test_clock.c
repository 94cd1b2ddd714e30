/*
 * test_clock.c - unit tests for src/core/clock.c: known dates, 100k random
 * seconds against gmtime_r + strftime in the C locale, the once-per-second
 * caching of hp_clock_date_update, and sanity of the clock reads.
 */
#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "hotpath/clock.h"

static void expect(int64_t sec, const char *want)
{
    char out[HP_CLOCK_DATE_LEN + 1];
    memset(out, 'x', sizeof(out));
    hp_clock_date_format(sec, out);
    assert_int_equal(strlen(out), HP_CLOCK_DATE_LEN);
    assert_string_equal(out, want);
}

static void test_known_dates(void **state)
{
    (void)state;
    expect(0, "Thu, 01 Jan 1970 00:00:00 GMT");
    expect(784111777, "Sun, 06 Nov 1994 08:49:37 GMT"); /* RFC 9110 */
    expect(951782400, "Tue, 29 Feb 2000 00:00:00 GMT"); /* 400-year leap */
    expect(951868799, "Tue, 29 Feb 2000 23:59:59 GMT");
    expect(951868800, "Wed, 01 Mar 2000 00:00:00 GMT");
    expect(1709164800, "Thu, 29 Feb 2024 00:00:00 GMT");
    expect(4107542400, "Mon, 01 Mar 2100 00:00:00 GMT"); /* 2100: no 29th */
    expect(4107542399, "Sun, 28 Feb 2100 23:59:59 GMT");
    expect(946684799, "Fri, 31 Dec 1999 23:59:59 GMT");
    expect(946684800, "Sat, 01 Jan 2000 00:00:00 GMT");
    expect(1735689599, "Tue, 31 Dec 2024 23:59:59 GMT"); /* leap year end */
    expect(2147483647, "Tue, 19 Jan 2038 03:14:07 GMT");
    expect(2147483648, "Tue, 19 Jan 2038 03:14:08 GMT"); /* past int32 */
    expect(253402300799, "Fri, 31 Dec 9999 23:59:59 GMT");
    /* outside the supported range: clamped */
    expect(-1, "Thu, 01 Jan 1970 00:00:00 GMT");
    expect(253402300800, "Fri, 31 Dec 9999 23:59:59 GMT");
    expect(INT64_MAX, "Fri, 31 Dec 9999 23:59:59 GMT");
}

static void reference(int64_t sec, char *buf, size_t len)
{
    time_t t = (time_t)sec;
    struct tm tm;
    assert_non_null(gmtime_r(&t, &tm));
    assert_int_equal(strftime(buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm),
                     HP_CLOCK_DATE_LEN);
}

static void test_random_vs_libc(void **state)
{
    (void)state;
    assert_non_null(setlocale(LC_TIME, "C"));
    uint64_t x = 0x243F6A8885A308D3ULL;
    char want[64], got[HP_CLOCK_DATE_LEN + 1];
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t sec;
        switch (i % 4) {
        case 0: /* anywhere in 1970..9999 */
            sec = (int64_t)(x % 253402300800ULL);
            break;
        case 1: /* near now, where the server lives */
            sec = 1600000000 + (int64_t)(x % 1000000000ULL);
            break;
        case 2: /* around midnights and month ends */
            sec = (int64_t)(x % 2932896ULL) * 86400 + (int64_t)(x % 3) - 1;
            if (sec < 0)
                sec = 0;
            break;
        default: /* first and last days of centuries */
            sec = (int64_t)((x >> 20) % 80 + 1) * 3155695200LL +
                  (int64_t)(x % (4 * 86400)) - 2 * 86400;
            break;
        }
        reference(sec, want, sizeof(want));
        hp_clock_date_format(sec, got);
        if (strcmp(got, want) != 0)
            fail_msg("sec %lld: got '%s' want '%s'", (long long)sec, got,
                     want);
    }
}

/* Every day 1970..2400 at one second before midnight. */
static void test_every_day(void **state)
{
    (void)state;
    char want[64], got[HP_CLOCK_DATE_LEN + 1];
    for (int64_t day = 0; day < 157000; day++) {
        int64_t sec = day * 86400 + 86399;
        reference(sec, want, sizeof(want));
        hp_clock_date_format(sec, got);
        if (strcmp(got, want) != 0)
            fail_msg("day %lld: got '%s' want '%s'", (long long)day, got,
                     want);
    }
}

static void test_update(void **state)
{
    (void)state;
    hp_clock_date_t d = HP_CLOCK_DATE_INIT;
    assert_int_equal(d.sec, -1);
    assert_true(hp_clock_date_update(&d, 784111777));
    assert_string_equal(d.text, "Sun, 06 Nov 1994 08:49:37 GMT");
    /* same second: untouched (prove it by scribbling on the text) */
    d.text[0] = '#';
    assert_false(hp_clock_date_update(&d, 784111777));
    assert_int_equal(d.text[0], '#');
    assert_true(hp_clock_date_update(&d, 784111778));
    assert_string_equal(d.text, "Sun, 06 Nov 1994 08:49:38 GMT");
    /* a step back is a change too */
    assert_true(hp_clock_date_update(&d, 0));
    assert_string_equal(d.text, "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_false(hp_clock_date_update(&d, 0));
    assert_int_equal(d.sec, 0);
}

static uint64_t raw_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Each read lies between two reads of the clock it claims to be, in its
 * unit: exact, so no sleep and no bound on how long anything took. */
static void test_clock_reads(void **state)
{
    (void)state;
    uint64_t a = raw_mono_ns();
    uint64_t ns = hp_clock_mono_ns();
    uint64_t b = raw_mono_ns();
    assert_true(a <= ns && ns <= b);
    a = raw_mono_ns();
    uint64_t ms = hp_clock_mono_ms();
    b = raw_mono_ns();
    assert_true(a / 1000000u <= ms && ms <= b / 1000000u);
    /* time() may read the coarse clock, which lags CLOCK_REALTIME by up
     * to a tick: the second after is allowed for that */
    int64_t libc0 = (int64_t)time(NULL);
    int64_t real = hp_clock_real_sec();
    int64_t libc1 = (int64_t)time(NULL);
    assert_true(real >= libc0 && real <= libc1 + 1);
    assert_true(real > 1600000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_dates),
        cmocka_unit_test(test_random_vs_libc),
        cmocka_unit_test(test_every_day),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_clock_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
