/*
 * test_breaker.c - unit tests for the publishing circuit breaker
 * (src/amqp/breaker.c).
 *
 * Every transition (closed -> open -> half-open -> closed, half-open ->
 * open again with the open time doubling up to its cap), the window
 * sliding (failures age out bucket by bucket, a long quiet empties it),
 * probes (counted, given back by release, refused past the count),
 * results recorded while open, and the clock's edges: a time that goes
 * back, and times near UINT64_MAX. hp_amqp_breaker_validate runs after
 * every call.
 */
#include "hotpath/amqp_breaker.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* window 1600 ms: buckets of 100 ms. */
static const hp_amqp_breaker_config_t CFG = {
    .failures = 3, .window_ms = 1600, .open_ms = 1000, .open_max_ms = 5000, .probes = 1};

static bool allow(hp_amqp_breaker_t *b, uint64_t now)
{
    bool r = hp_amqp_breaker_allow(b, now);
    assert_int_equal(hp_amqp_breaker_validate(b), 0);
    return r;
}

static void record(hp_amqp_breaker_t *b, uint64_t now, bool ok)
{
    hp_amqp_breaker_record(b, now, ok);
    assert_int_equal(hp_amqp_breaker_validate(b), 0);
}

static void fail_n(hp_amqp_breaker_t *b, uint64_t now, int n)
{
    for (int i = 0; i < n; i++) {
        assert_true(allow(b, now));
        record(b, now, false);
    }
}

static void test_init(void **state)
{
    (void)state;
    hp_amqp_breaker_t b;
    assert_int_equal(hp_amqp_breaker_init(&b, &CFG), 0);
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_CLOSED);
    assert_int_equal(hp_amqp_breaker_opened(&b), 0);
    assert_int_equal(hp_amqp_breaker_retry_after_ms(&b, 0), 0);
    assert_int_equal(hp_amqp_breaker_validate(&b), 0);
    hp_amqp_breaker_config_t bad[] = {CFG, CFG, CFG, CFG};
    bad[0].failures = 0;
    bad[1].window_ms = 0;
    bad[2].open_ms = 0;
    bad[3].open_max_ms = 999;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(hp_amqp_breaker_init(&b, &bad[i]), -EINVAL);
    /* Defaults filled in: no growth without open_max_ms, one probe. */
    hp_amqp_breaker_config_t c = CFG;
    c.open_max_ms = 0;
    c.probes = 0;
    assert_int_equal(hp_amqp_breaker_init(&b, &c), 0);
    assert_int_equal(b.cfg.open_max_ms, 1000);
    assert_int_equal(b.cfg.probes, 1);
    /* A window shorter than its buckets: one millisecond each. */
    c.window_ms = 1;
    assert_int_equal(hp_amqp_breaker_init(&b, &c), 0);
    assert_int_equal(b.bucket_ms, 1);
    c = HP_AMQP_BREAKER_CONFIG_DEFAULT;
    assert_int_equal(hp_amqp_breaker_init(&b, &c), 0);
}

/* closed -> open -> half-open -> closed. */
static void test_open_probe_close(void **state)
{
    (void)state;
    hp_amqp_breaker_t b;
    assert_int_equal(hp_amqp_breaker_init(&b, &CFG), 0);
    uint64_t t = 50000;
    fail_n(&b, t, 2);
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_CLOSED);
    /* Successes between failures do not reset the count. */
    assert_true(allow(&b, t + 10));
    record(&b, t + 10, true);
    fail_n(&b, t + 20, 1);
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_OPEN);
    assert_int_equal(hp_amqp_breaker_opened(&b), 1);
    /* Refused for open_ms, Retry-After counting down. */
    assert_false(allow(&b, t + 20));
    assert_int_equal(hp_amqp_breaker_retry_after_ms(&b, t + 20), 1000);
    assert_int_equal(hp_amqp_breaker_retry_after_ms(&b, t + 519), 501);
    assert_false(allow(&b, t + 1019));
    assert_int_equal(hp_amqp_breaker_retry_after_ms(&b, t + 1019), 1);
    /* Its time is up: retry_after says so before allow has moved it. */
    assert_int_equal(hp_amqp_breaker_retry_after_ms(&b, t + 1020), 0);
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_OPEN);
    /* Half-open: one probe; the next is refused while it is out. */
    assert_true(allow(&b, t + 1020));
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_HALF_OPEN);
    assert_false(allow(&b, t + 1021));
    assert_int_equal(hp_amqp_breaker_retry_after_ms(&b, t + 1021), 1000);
    record(&b, t + 1500, true);
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_CLOSED);
    assert_int_equal(hp_amqp_breaker_retry_after_ms(&b, t + 1500), 0);
    /* Closed with an empty window: two failures do not open it. */
    fail_n(&b, t + 1501, 2);
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_CLOSED);
    fail_n(&b, t + 1502, 1);
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_OPEN);
    assert_int_equal(hp_amqp_breaker_opened(&b), 2);
}

/* half-open -> open, for twice as long each time, up to open_max_ms;
 * a success brings it back to open_ms. */
static void test_failed_probe_backs_off(void **state)
{
    (void)state;
    hp_amqp_breaker_t b;
    assert_int_equal(hp_amqp_breaker_init(&b, &CFG), 0);
    uint64_t t = 0;
    fail_n(&b, t, 3);
    uint64_t want[] = {2000, 4000, 5000, 5000};
    uint64_t open_for = 1000;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        t += open_for - 1;
        assert_false(allow(&b, t));
        t += 1;
        assert_true(allow(&b, t));
        record(&b, t, false);
        assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_OPEN);
        assert_int_equal(hp_amqp_breaker_retry_after_ms(&b, t), want[i]);
        open_for = want[i];
    }
    assert_int_equal(hp_amqp_breaker_opened(&b), 5);
    t += open_for;
    assert_true(allow(&b, t));
    record(&b, t, true);
    fail_n(&b, t, 3);
    assert_int_equal(hp_amqp_breaker_retry_after_ms(&b, t), 1000);
}

/* Several probes: each counted; the first outcome decides. */
static void test_probes_and_release(void **state)
{
    (void)state;
    hp_amqp_breaker_t b;
    hp_amqp_breaker_config_t c = CFG;
    c.probes = 2;
    assert_int_equal(hp_amqp_breaker_init(&b, &c), 0);
    fail_n(&b, 0, 3);
    assert_true(allow(&b, 1000));
    assert_true(allow(&b, 1000));
    assert_false(allow(&b, 1000));
    /* A probe that said nothing (a 404, a publish never sent) gives its
     * place back, once; more releases than probes change nothing. */
    hp_amqp_breaker_release(&b);
    assert_int_equal(hp_amqp_breaker_validate(&b), 0);
    assert_true(allow(&b, 1001));
    assert_false(allow(&b, 1001));
    hp_amqp_breaker_release(&b);
    hp_amqp_breaker_release(&b);
    hp_amqp_breaker_release(&b);
    assert_int_equal(b.probes_out, 0);
    assert_int_equal(hp_amqp_breaker_validate(&b), 0);
    assert_true(allow(&b, 1002));
    record(&b, 1003, false);
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_OPEN);
    /* The other probe's late success changes nothing while open. */
    record(&b, 1004, true);
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_OPEN);
    /* Release does nothing closed or open. */
    hp_amqp_breaker_release(&b);
    assert_int_equal(hp_amqp_breaker_validate(&b), 0);
    assert_true(allow(&b, 3003));
    record(&b, 3003, true);
    hp_amqp_breaker_release(&b);
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_CLOSED);
    assert_int_equal(hp_amqp_breaker_validate(&b), 0);
}

/* Results that arrive while open (publishes let through before) are
 * ignored: they neither extend nor close it. */
static void test_results_while_open(void **state)
{
    (void)state;
    hp_amqp_breaker_t b;
    assert_int_equal(hp_amqp_breaker_init(&b, &CFG), 0);
    fail_n(&b, 100, 3);
    record(&b, 600, false);
    record(&b, 700, true);
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_OPEN);
    assert_int_equal(hp_amqp_breaker_opened(&b), 1);
    assert_int_equal(hp_amqp_breaker_retry_after_ms(&b, 700), 400);
    assert_true(allow(&b, 1100));
}

/* The window: buckets of 100 ms; a failure counts for 1500 to 1600 ms. */
static void test_window_slides(void **state)
{
    (void)state;
    hp_amqp_breaker_t b;
    assert_int_equal(hp_amqp_breaker_init(&b, &CFG), 0);
    uint64_t t = 10000; /* a bucket's start */
    fail_n(&b, t, 1);
    fail_n(&b, t + 99, 1);
    assert_int_equal(b.in_window, 2);
    /* 1500 ms later both still count: the third opens it. */
    hp_amqp_breaker_t copy = b;
    fail_n(&copy, t + 1599, 1);
    assert_int_equal(hp_amqp_breaker_state(&copy), HP_AMQP_BREAKER_OPEN);
    /* At 1600 ms their bucket has left the window. */
    copy = b;
    fail_n(&copy, t + 1600, 1);
    assert_int_equal(hp_amqp_breaker_state(&copy), HP_AMQP_BREAKER_CLOSED);
    assert_int_equal(copy.in_window, 1);
    /* Failures spread over buckets leave one bucket at a time. */
    hp_amqp_breaker_init(&b, &CFG);
    fail_n(&b, t, 1);
    fail_n(&b, t + 800, 1);
    fail_n(&b, t + 1600, 1); /* the first left as this came */
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_CLOSED);
    assert_int_equal(b.in_window, 2);
    fail_n(&b, t + 2399, 1); /* the one at 800 still counts */
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_OPEN);
    /* A long quiet empties it all at once. */
    hp_amqp_breaker_init(&b, &CFG);
    fail_n(&b, t, 2);
    fail_n(&b, t + 1000000, 2);
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_CLOSED);
    assert_int_equal(b.in_window, 2);
    /* Successes do not move it. */
    record(&b, t + 2000000, true);
    assert_int_equal(b.in_window, 2);
}

/* A failure count of one: the first failure opens it. */
static void test_one_failure(void **state)
{
    (void)state;
    hp_amqp_breaker_t b;
    hp_amqp_breaker_config_t c = CFG;
    c.failures = 1;
    assert_int_equal(hp_amqp_breaker_init(&b, &c), 0);
    assert_true(allow(&b, 0));
    record(&b, 0, true);
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_CLOSED);
    fail_n(&b, 0, 1);
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_OPEN);
    /* At time 0 too: it opened at 0, and 0 + open_ms is when it ends. */
    assert_false(allow(&b, 999));
    assert_true(allow(&b, 1000));
}

/* A clock that goes back is held at the latest time: it neither reopens
 * nor shortens anything. */
static void test_clock_goes_back(void **state)
{
    (void)state;
    hp_amqp_breaker_t b;
    assert_int_equal(hp_amqp_breaker_init(&b, &CFG), 0);
    fail_n(&b, 5000, 3);
    assert_false(allow(&b, 0));
    assert_int_equal(hp_amqp_breaker_retry_after_ms(&b, 0), 1000);
    assert_int_equal(hp_amqp_breaker_retry_after_ms(&b, 5500), 500);
    assert_false(allow(&b, 5500));
    assert_int_equal(hp_amqp_breaker_retry_after_ms(&b, 100), 500);
    assert_true(allow(&b, 6000));
    record(&b, 10, true); /* back in time: taken as 6000 */
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_CLOSED);
    /* Failures stamped in the past land in the newest bucket. */
    fail_n(&b, 7000, 2);
    fail_n(&b, 1, 1);
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_OPEN);
    assert_int_equal(hp_amqp_breaker_retry_after_ms(&b, 7000), 1000);
}

/* Near the end of the clock: differences, never sums that overflow. */
static void test_clock_edges(void **state)
{
    (void)state;
    hp_amqp_breaker_t b;
    hp_amqp_breaker_config_t c = CFG;
    c.open_ms = UINT64_MAX / 2;
    c.open_max_ms = UINT64_MAX;
    assert_int_equal(hp_amqp_breaker_init(&b, &c), 0);
    uint64_t t = UINT64_MAX - 10;
    fail_n(&b, t, 3);
    assert_false(allow(&b, UINT64_MAX));
    assert_int_equal(hp_amqp_breaker_retry_after_ms(&b, UINT64_MAX), UINT64_MAX / 2 - 10);
    /* Open times doubling past half the range stop at the cap. */
    b.opened_ms = 0;
    b.now_ms = 0;
    assert_true(allow(&b, UINT64_MAX / 2));
    record(&b, UINT64_MAX / 2, false);
    assert_int_equal(b.open_for_ms, UINT64_MAX - 1);
    b.opened_ms = 0;
    assert_true(allow(&b, UINT64_MAX));
    record(&b, UINT64_MAX, false);
    assert_int_equal(b.open_for_ms, UINT64_MAX);
    assert_false(allow(&b, UINT64_MAX));
    /* The window's bucket numbers at the clock's end. */
    hp_amqp_breaker_init(&b, &CFG);
    fail_n(&b, UINT64_MAX - 1, 2);
    fail_n(&b, UINT64_MAX, 1);
    assert_int_equal(hp_amqp_breaker_state(&b), HP_AMQP_BREAKER_OPEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_open_probe_close),
        cmocka_unit_test(test_failed_probe_backs_off),
        cmocka_unit_test(test_probes_and_release),
        cmocka_unit_test(test_results_while_open),
        cmocka_unit_test(test_window_slides),
        cmocka_unit_test(test_one_failure),
        cmocka_unit_test(test_clock_goes_back),
        cmocka_unit_test(test_clock_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
