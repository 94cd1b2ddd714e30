/*
 * test_resp_writer.c - response heads: decimal formatting of lengths and the
 * status table (reason phrases, unknown codes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/resp_writer_int.h"

static void check_u64(uint64_t v)
{
    char got[32], want[32];
    uint32_t n = hp_resp_writer_u64(got, v);
    got[n] = '\0';
    snprintf(want, sizeof want, "%llu", (unsigned long long)v);
    assert_string_equal(got, want);
}

/* Every boundary of the two-digits-at-a-time loop, and a million random
 * values of every magnitude, against snprintf. */
static void test_u64_matches_snprintf(void **state)
{
    (void)state;
    uint64_t p = 1;
    for (int i = 0; i < 20; i++, p *= 10) {
        check_u64(p);
        check_u64(p - 1);
        check_u64(p + 1);
    }
    check_u64(0);
    check_u64(UINT64_MAX);
    unsigned seed = 7;
    for (int i = 0; i < 1000000; i++) {
        uint64_t v = ((uint64_t)rand_r(&seed) << 33) ^ ((uint64_t)rand_r(&seed) << 2) ^
                     (uint64_t)rand_r(&seed);
        check_u64(v >> (rand_r(&seed) % 64));
    }
}

static void test_reasons(void **state)
{
    (void)state;
    assert_string_equal(hp_resp_writer_reason(200), "OK");
    assert_string_equal(hp_resp_writer_reason(201), "Created");
    assert_string_equal(hp_resp_writer_reason(404), "Not Found");
    assert_string_equal(hp_resp_writer_reason(413), "Content Too Large");
    assert_string_equal(hp_resp_writer_reason(431), "Request Header Fields Too Large");
    assert_string_equal(hp_resp_writer_reason(505), "HTTP Version Not Supported");
    /* Unknown codes have no phrase (the line then reads "HTTP/1.1 299 "). */
    assert_string_equal(hp_resp_writer_reason(299), "");
    assert_string_equal(hp_resp_writer_reason(0), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u64_matches_snprintf),
        cmocka_unit_test(test_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
