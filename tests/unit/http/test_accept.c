/*
 * test_accept.c - unit tests for Accept-Encoding negotiation
 * (src/http/accept.c).
 *
 * Real browser and tool headers, q-value edge cases (RFC 9110 §12.4.2
 * grammar: at most three decimals, nothing above 1), ties, "*", identity
 * exclusion, x-gzip, malformed elements (ignored one by one, quote-aware),
 * every `available` mask, and exact-size heap inputs so ASan catches reads
 * past the end.
 */
#include "hotpath/alloc.h"
#include "http/accept_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define ID HP_ENC_IDENTITY
#define GZ HP_ENC_GZIP
#define BR HP_ENC_BR
#define ALL (ID | GZ | BR)

static unsigned pick(const char *v, unsigned avail)
{
    if (!v)
        return hp_accept_encoding(NULL, 0, avail);
    size_t n = strlen(v);
    char *c = malloc(n ? n : 1);
    assert_non_null(c);
    memcpy(c, v, n);
    unsigned r = hp_accept_encoding(c, n, avail);
    free(c);
    /* Always one bit of what may be sent, or nothing. */
    assert_true(r == 0 || r == ID || r == GZ || r == BR);
    assert_true((r & ~(avail | ID)) == 0);
    return r;
}

static void expect(const char *v, unsigned avail, unsigned want)
{
    unsigned got = pick(v, avail);
    if (got != want)
        fail_msg("\"%s\" avail %u: got %u, want %u", v ? v : "(null)", avail, got, want);
}

static void test_absent_and_empty(void **state)
{
    (void)state;
    expect(NULL, ALL, ID);
    expect(NULL, ID, ID);
    expect("", ALL, ID);
    expect(" ", ALL, ID);
    expect(" , ,", ALL, ID);
}

static void test_real_clients(void **state)
{
    (void)state;
    expect("gzip, deflate, br, zstd", ALL, BR);                 /* Chrome */
    expect("gzip, deflate, br", ALL, BR);                       /* Firefox */
    expect("gzip, deflate, br", ID | GZ, GZ);
    expect("gzip, deflate", ALL, GZ);                           /* curl --compressed (old) */
    expect("deflate, gzip;q=1.0, *;q=0.5", ALL, GZ);            /* curl docs example */
    expect("br;q=1.0, gzip;q=0.8, *;q=0.1", ALL, BR);           /* MDN */
    expect("gzip;q=1.0, identity; q=0.5, *;q=0", ALL, GZ);      /* RFC 9110 §12.5.3 */
    expect("compress, gzip", ALL, GZ);                          /* RFC 9110 §12.5.3 */
    expect("*", ALL, BR);                                       /* RFC 9110 §12.5.3 */
    expect("compress;q=0.5, gzip;q=1.0", ALL, GZ);              /* RFC 9110 §12.5.3 */
    expect("identity", ALL, ID);
}

static void test_q_ordering_and_ties(void **state)
{
    (void)state;
    expect("gzip, br", ALL, BR); /* tie at 1: br */
    expect("br, gzip", ALL, BR);
    expect("gzip;q=0.5, br;q=0.5", ALL, BR);
    expect("gzip;q=0.6, br;q=0.5", ALL, GZ);
    expect("gzip;q=1.0, br;q=0.999", ALL, GZ);
    expect("gzip;q=0.001, br;q=0.002", ALL, BR);
    expect("identity, gzip;q=0.5", ALL, ID);
    expect("identity;q=0.5, gzip;q=0.5", ALL, GZ); /* tie: gzip before identity */
    expect("identity;q=0.5, br;q=0.5, gzip;q=0.5", ALL, BR);
    expect("identity;q=0.6, br;q=0.5", ALL, ID);
    /* An unlisted identity ranks below any listed coding with q > 0. */
    expect("gzip;q=0.001", ALL, GZ);
    expect("gzip", ID | BR, ID);
    expect("br", ID | GZ, ID);
}

static void test_q_grammar(void **state)
{
    (void)state;
    /* Valid forms. */
    expect("br;q=1", ALL, BR);
    expect("br;q=1.", ALL, BR);
    expect("br;q=1.0", ALL, BR);
    expect("br;q=1.000", ALL, BR);
    expect("br;q=0.5", ALL, BR);
    expect("br;q=0.999", ALL, BR);
    expect("br;Q=0.5", ALL, BR);
    expect("br ;\tq=0.5 ", ALL, BR);
    /* q=0 in any spelling excludes. */
    expect("br;q=0", ALL, ID);
    expect("br;q=0.", ALL, ID);
    expect("br;q=0.000", ALL, ID);
    expect("br;q=0, gzip", ALL, GZ);
    /* Invalid: the element is ignored (so br is not listed at all). */
    static const char *const bad[] = {
        "br;q=1.0001", "br;q=1.001", "br;q=1.1",  "br;q=2",     "br;q=-1",    "br;q=.5",
        "br;q=0.5x",   "br;q=",      "br;q",      "br;q = 0.5", "br;q= 0.5",  "br;q =0.5",
        "br;q=0.0000", "br;q=01",    "br;q=0;5",  "br;",        "br;q=0.5;q=0.6",
        "br;level=5",  "br;=1",      "br q=0.5",  "br;q=1e0",   "br;q=\"1\"", "br/1",
        "\"br\"",      "br;q=0.5;",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect(bad[i], ALL, ID);
        /* ...and the elements around it still count. */
        char b[64];
        snprintf(b, sizeof(b), "gzip;q=0.3, %s, identity;q=0.2", bad[i]);
        expect(b, ALL, GZ);
    }
    /* "br;q=0,5" is "br;q=0" then the element "5" (unknown coding). */
    expect("br;q=0,5, gzip;q=0.1", ALL, GZ);
    expect("gzip;q=0.5, br;q=1.5", ALL, GZ);
    expect("br;q=0, gzip;q=bad", ALL, ID);
}

static void test_star_and_identity(void **state)
{
    (void)state;
    expect("*", ALL, BR);
    expect("*", ID | GZ, GZ);
    expect("*", ID, ID);
    expect("*;q=0.5, gzip", ALL, GZ);
    expect("*;q=0.5, gzip;q=0.4", ALL, BR);
    expect("*;q=0", ALL, 0);
    expect("*;q=0", ID, 0);
    expect("*;q=0, identity", ALL, ID);
    expect("*;q=0, gzip;q=0.1", ALL, GZ);
    expect("*;q=0, identity;q=0.1, gzip;q=0.1", ALL, GZ);
    expect("br, *;q=0", ID | GZ, 0);
    expect("br, *;q=0", ALL, BR);
    expect("identity;q=0", ALL, 0);
    expect("identity;q=0", ID, 0);
    expect("identity;q=0, gzip", ALL, GZ);
    expect("identity;q=0, gzip", ID | BR, 0);
    expect("identity;q=0, *", ALL, BR);
    expect("identity;q=0, *", ID, 0);
    /* "*" gives identity its q when identity is not named. */
    expect("*;q=0.5", ID, ID);
    expect("gzip;q=0.4, *;q=0.5", ID | GZ, ID);
}

static void test_names(void **state)
{
    (void)state;
    expect("x-gzip", ALL, GZ);
    expect("X-GZIP", ALL, GZ);
    expect("GZip", ALL, GZ);
    expect("Br", ALL, BR);
    expect("IDENTITY;q=0", ID, 0);
    expect("gzipx, brr, x-br, gz, b", ALL, ID); /* near misses are unknown */
    expect("deflate, compress, zstd", ALL, ID);
    expect("zstd;q=1, gzip;q=0.1", ALL, GZ);
    /* A coding listed twice keeps its highest q. */
    expect("gzip;q=0, gzip;q=0.5", ALL, GZ);
    expect("gzip;q=0.5, x-gzip;q=0", ALL, GZ);
    expect("br;q=0.1, gzip;q=0.2, br;q=0.3", ALL, BR);
}

static void test_list_syntax(void **state)
{
    (void)state;
    expect(" , gzip ,, br;q=0.1 , ", ALL, GZ);
    expect("gzip\t,\tbr", ALL, BR);
    expect(",,,br", ALL, BR);
    expect("gzip br", ALL, ID);          /* one malformed element */
    expect("gzip br, br;q=0.1", ALL, BR);
    expect("gzip;x=\"a,br,\"", ALL, ID); /* quoted commas do not split */
    expect("gzip;x=\"a\\\",br\", br;q=0.2", ALL, BR);
    expect("gzip;x=\"unterminated, br", ALL, ID);
    expect("\x80gzip, br", ALL, BR);
    expect("gzip\x01, br;q=0.4", ALL, BR);
    char nul[] = "gzip\0, br";
    assert_int_equal(hp_accept_encoding(nul, sizeof(nul) - 1, ALL), BR);
}

static void test_available_masks(void **state)
{
    (void)state;
    static const char *const hdrs[] = {
        NULL, "", "gzip", "br", "gzip, br", "*", "*;q=0", "identity;q=0", "br;q=0.5, gzip;q=0.6",
    };
    for (unsigned a = 0; a < 64; a++)
        for (size_t h = 0; h < sizeof(hdrs) / sizeof(hdrs[0]); h++)
            (void)pick(hdrs[h], a); /* pick() asserts the result shape */
    /* Unknown bits and a missing identity bit change nothing. */
    expect("gzip, br", 0, ID);
    expect("gzip, br", 0xf8u | GZ, GZ);
    expect("gzip", GZ, GZ);
    expect(NULL, 0, ID);
}

/* Every prefix of a realistic value is read in bounds. */
static void test_truncated(void **state)
{
    (void)state;
    const char *v = "gzip;q=0.8, br;q=0.900 , identity;q=0, *;q=0.1";
    for (size_t k = 0; k <= strlen(v); k++) {
        char *c = malloc(k ? k : 1);
        assert_non_null(c);
        memcpy(c, v, k);
        unsigned r = hp_accept_encoding(c, k, ALL);
        free(c);
        assert_true(r == 0 || r == ID || r == GZ || r == BR);
    }
    expect(v, ALL, BR);
}

static void test_no_allocation(void **state)
{
    (void)state;
    uint64_t before = hp_alloc_count();
    hp_alloc_fail_after(1, 1);
    static const char v[] = "gzip;q=0.5, br;q=0.5, identity;q=0";
    for (int i = 0; i < 1000; i++)
        assert_int_equal(hp_accept_encoding(v, sizeof(v) - 1, ALL), BR);
    hp_alloc_fail_after(0, 0);
    assert_int_equal(hp_alloc_count(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absent_and_empty),  cmocka_unit_test(test_real_clients),
        cmocka_unit_test(test_q_ordering_and_ties), cmocka_unit_test(test_q_grammar),
        cmocka_unit_test(test_star_and_identity), cmocka_unit_test(test_names),
        cmocka_unit_test(test_list_syntax),       cmocka_unit_test(test_available_masks),
        cmocka_unit_test(test_truncated),         cmocka_unit_test(test_no_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
