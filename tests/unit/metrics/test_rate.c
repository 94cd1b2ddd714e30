/*
 * test_rate.c - the constant-rate schedule: spacing, interleaving across
 * connections, no drift over long runs, and due counts that agree with due
 * times at every boundary.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "metrics/rate_int.h"

static void test_rejects_bad_arguments(void **state)
{
    (void)state;
    hp_rate_t r;
    assert_int_equal(hp_rate_init(&r, 0, 1, 0), -EINVAL);
    assert_int_equal(hp_rate_init(&r, -5, 1, 0), -EINVAL);
    assert_int_equal(hp_rate_init(&r, 100, 0, 0), -EINVAL);
    assert_int_equal(hp_rate_init(&r, 1.0 / 0.0, 1, 0), -EINVAL);
    assert_int_equal(hp_rate_init(&r, 100, 1, 0), 0);
}

/* One connection at 1,000/s: exactly 1 ms apart. */
static void test_spacing_single_connection(void **state)
{
    (void)state;
    hp_rate_t r;
    assert_int_equal(hp_rate_init(&r, 1000, 1, 5000), 0);
    for (uint64_t k = 0; k < 10000; k++)
        assert_int_equal(hp_rate_due(&r, 0, k), 5000 + k * 1000000);
}

/* Merged over all connections, the sends are evenly spaced at 1/rate,
 * each connection at nconns/rate, and connections interleave in order. */
static void test_even_interleaving(void **state)
{
    (void)state;
    const uint32_t n = 7;
    const double rate = 12345.0;
    hp_rate_t r;
    assert_int_equal(hp_rate_init(&r, rate, n, 0), 0);
    double period = 1e9 / rate;
    uint64_t prev = 0;
    for (uint64_t j = 0; j < 70000; j++) {
        uint32_t conn = (uint32_t)(j % n);
        uint64_t k = j / n;
        uint64_t due = hp_rate_due(&r, conn, k);
        /* within rounding of the ideal time, never drifting */
        double ideal = (double)j * period;
        assert_true((double)due >= ideal - 1.0 && (double)due <= ideal + 1.0);
        if (j > 0) {
            uint64_t gap = due - prev;
            assert_true(gap >= (uint64_t)period - 1 && gap <= (uint64_t)period + 2);
        }
        prev = due;
    }
    /* a connection's own requests are n periods apart */
    uint64_t a = hp_rate_due(&r, 3, 100), b = hp_rate_due(&r, 3, 101);
    assert_true(b - a >= (uint64_t)(n * period) - 1 && b - a <= (uint64_t)(n * period) + 1);
}

/* The count of due requests steps up exactly at each due time. */
static void test_due_count_matches_due_times(void **state)
{
    (void)state;
    const uint32_t n = 5;
    hp_rate_t r;
    assert_int_equal(hp_rate_init(&r, 3333.3, n, 1000000), 0);
    assert_int_equal(hp_rate_due_count(&r, 0, 999999), 0);
    for (uint32_t conn = 0; conn < n; conn++) {
        for (uint64_t k = 0; k < 2000; k++) {
            uint64_t due = hp_rate_due(&r, conn, k);
            assert_int_equal(hp_rate_due_count(&r, conn, due - 1), k);
            assert_int_equal(hp_rate_due_count(&r, conn, due), k + 1);
        }
    }
}

/* An hour at 1 M/s over 1,000 connections: the last due time is still
 * within a nanosecond of the ideal (no accumulated drift). */
static void test_no_drift_long_run(void **state)
{
    (void)state;
    hp_rate_t r;
    assert_int_equal(hp_rate_init(&r, 1e6, 1000, 0), 0);
    uint64_t k = 3600ull * 1000; /* each connection sends 1,000/s */
    uint64_t due = hp_rate_due(&r, 999, k);
    double ideal = ((double)k * 1000 + 999) * 1000.0;
    assert_true((double)due >= ideal - 1 && (double)due <= ideal + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejects_bad_arguments),
        cmocka_unit_test(test_spacing_single_connection),
        cmocka_unit_test(test_even_interleaving),
        cmocka_unit_test(test_due_count_matches_due_times),
        cmocka_unit_test(test_no_drift_long_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
