/*
 * test_target.c - unit tests for the request-target checker
 * (src/http/target.c).
 *
 * Each form is checked for its spans, each method restriction and each
 * rule of the grammar for a rejection, with the boundaries of the numeric
 * rules (dec-octet, h16, the IPv6 piece count) on both sides. Every byte
 * value is tried alone in a path, a query and a host against the classes
 * RFC 3986 gives. Targets are copied to heap blocks of exactly their
 * length, so a read past the end is an ASan report in the sanitizer build.
 */
#include "hotpath/http_parser.h"
#include "http/target_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int parse_n(const char *s, size_t n, int method, hp_target_t *out)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    int r = hp_target_parse(p, n, method, out);
    free(p);
    return r;
}

static int parse(const char *s, int method, hp_target_t *out)
{
    return parse_n(s, strlen(s), method, out);
}

static int get(const char *s)
{
    hp_target_t t;
    return parse(s, HP_METHOD_GET, &t);
}

static void assert_span(const char *whole, hp_http_span_t sp, const char *want)
{
    if (!want) {
        assert_int_equal(sp.off, 0);
        assert_int_equal(sp.len, 0);
        return;
    }
    assert_int_equal(sp.len, strlen(want));
    assert_memory_equal(whole + sp.off, want, sp.len);
}

/* Accepted with form `form` and these spans (NULL: absent). */
static void accepted(const char *s, int method, int form, const char *path, const char *query,
                     const char *authority)
{
    hp_target_t t;
    int r = parse(s, method, &t);
    if (r != 0)
        fail_msg("rejected: \"%s\" (method %d)", s, method);
    assert_int_equal(t.form, form);
    assert_span(s, t.path, path);
    assert_span(s, t.query, query);
    assert_span(s, t.authority, authority);
}

static void rejected(const char *s, int method)
{
    hp_target_t t;
    if (parse(s, method, &t) != -400)
        fail_msg("accepted: \"%s\" (method %d)", s, method);
}

static void test_origin_form(void **state)
{
    (void)state;
    accepted("/", HP_METHOD_GET, HP_TARGET_ORIGIN, "/", NULL, NULL);
    accepted("/a/b.html", HP_METHOD_GET, HP_TARGET_ORIGIN, "/a/b.html", NULL, NULL);
    accepted("/a?b=c&d", HP_METHOD_POST, HP_TARGET_ORIGIN, "/a", "b=c&d", NULL);
    /* An empty query is a query: off marks it, len is 0. */
    hp_target_t t;
    assert_int_equal(parse("/?", HP_METHOD_GET, &t), 0);
    assert_int_equal(t.path.len, 1);
    assert_int_equal(t.query.off, 2);
    assert_int_equal(t.query.len, 0);
    /* Every pchar, empty segments, dot segments and a second '?'. */
    accepted("/azAZ09-._~!$&'()*+,;=:@/%41%7e%2F", HP_METHOD_GET, HP_TARGET_ORIGIN,
             "/azAZ09-._~!$&'()*+,;=:@/%41%7e%2F", NULL, NULL);
    accepted("//a//b/./../c", HP_METHOD_GET, HP_TARGET_ORIGIN, "//a//b/./../c", NULL, NULL);
    accepted("/p?q/r?s:@%20", HP_METHOD_GET, HP_TARGET_ORIGIN, "/p", "q/r?s:@%20", NULL);
    /* Every method but CONNECT. */
    for (int m = HP_METHOD_UNKNOWN; m <= HP_METHOD_TRACE; m++)
        accepted("/x", m, HP_TARGET_ORIGIN, "/x", NULL, NULL);
    rejected("/x", HP_METHOD_CONNECT);
}

static void test_origin_form_rejections(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",        "a",         "/a#f",     "/#",       "/a?b#c",  "/%",      "/%4",
        "/%4g",    "/%g4",      "/a%2",     "/?%",      "/?%z1",   "/a\\b",   "/\\evil",
        "/a b",    "/a\"b",     "/<a>",     "/{x}",     "/a|b",    "/a^b",    "/a`b",
        "/a[b",    "/a]b",      "/a\tb",    "/\x7f",    "/\x80",   "/\xff",   "/?a b",
        "/?a[",    "/?a\\",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        rejected(bad[i], HP_METHOD_GET);
    /* A NUL is not a terminator here. */
    hp_target_t t;
    assert_int_equal(parse_n("/a\0b", 4, HP_METHOD_GET, &t), -400);
}

/* Each byte alone in a path, a query and a reg-name, against the sets the
 * grammar spells out. */
static void test_every_byte(void **state)
{
    (void)state;
    const char *lit = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                      "-._~!$&'()*+,;=";
    for (int b = 0; b < 256; b++) {
        bool l = b != 0 && strchr(lit, b) != NULL;
        bool pchar = l || b == ':' || b == '@';
        char s[16];
        hp_target_t t;

        memcpy(s, "/a", 2), s[2] = (char)b;
        int want = pchar || b == '/' || b == '?' ? 0 : -400;
        if (parse_n(s, 3, HP_METHOD_GET, &t) != want)
            fail_msg("path byte 0x%02x", b);

        memcpy(s, "/?a", 3), s[3] = (char)b;
        want = pchar || b == '/' || b == '?' ? 0 : -400;
        if (parse_n(s, 4, HP_METHOD_GET, &t) != want)
            fail_msg("query byte 0x%02x", b);

        memcpy(s, "http://a", 8), s[8] = (char)b;
        /* After a host: a reg-name byte, or what may end it. */
        want = l || b == '/' || b == '?' || b == ':' ? 0 : -400;
        if (parse_n(s, 9, HP_METHOD_GET, &t) != want)
            fail_msg("host byte 0x%02x", b);
    }
}

static void test_absolute_form(void **state)
{
    (void)state;
    int G = HP_METHOD_GET, A = HP_TARGET_ABSOLUTE;
    accepted("http://example.com/a?b", G, A, "/a", "b", "example.com");
    accepted("https://example.com:8443/", G, A, "/", NULL, "example.com:8443");
    accepted("HtTpS://h/x", G, A, "/x", NULL, "h");
    /* No path: an empty path-abempty, which means "/". */
    accepted("http://h", G, A, "", NULL, "h");
    accepted("http://h?q=1", G, A, "", "q=1", "h");
    accepted("http://h:", G, A, "", NULL, "h:"); /* port = *DIGIT */
    accepted("http://h:/", G, A, "/", NULL, "h:");
    accepted("http://h//a", G, A, "//a", NULL, "h");
    accepted("http://ex%41mple.com/", G, A, "/", NULL, "ex%41mple.com");
    accepted("http://a-b.c_d~!$&'()*+,;=:99/", G, A, "/", NULL, "a-b.c_d~!$&'()*+,;=:99");
    /* IP literals and IPv4. */
    accepted("http://192.0.2.1:80/", G, A, "/", NULL, "192.0.2.1:80");
    accepted("http://[::1]/", G, A, "/", NULL, "[::1]");
    accepted("http://[2001:db8::7]:8080/x", G, A, "/x", NULL, "[2001:db8::7]:8080");
    accepted("http://[v1.x:y]/", G, A, "/", NULL, "[v1.x:y]");
    /* Any method but CONNECT. */
    accepted("http://h/", HP_METHOD_OPTIONS, A, "/", NULL, "h");
    accepted("http://h/", HP_METHOD_POST, A, "/", NULL, "h");
    rejected("http://h/", HP_METHOD_CONNECT);
}

static void test_absolute_form_rejections(void **state)
{
    (void)state;
    static const char *bad[] = {
        /* other schemes, or none */
        "ftp://h/", "file:///etc/passwd", "urn:isbn:1", "mailto:a@b", "httpx://h/",
        "htt://h/", "http+s://h/", "1http://h/", "://h/", "h/", "example.com:80",
        /* http without "//" authority */
        "http:/a", "http:a", "http:", "http:?q", "http:/", "https:",
        /* empty host, userinfo, bad authority */
        "http://", "http:///a", "http://:80/", "http://?q", "http://u@h/", "http://u:p@h/",
        "http://@h/", "http://h@/", "http://h:8x/", "http://h:80:81/", "http://h%/",
        "http://h%4/", "http://h%zz/", "http://h h/", "http://h\\/", "http://h#f",
        "http://h/#f", "http://h/a b", "http://h/?a#", "http://[::1/", "http://::1/",
        "http://[::1]x/", "http://[]/", "http://[h]/", "http://h]/", "http://[::1]]/",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        rejected(bad[i], HP_METHOD_GET);
}

/* Hosts at the boundaries of dec-octet, h16 and the IPv6 piece count. */
static void test_ip_literals(void **state)
{
    (void)state;
    static const char *good[] = {
        "[::]",       "[::1]",      "[1::]",      "[1:2:3:4:5:6:7:8]",
        "[1:2:3:4:5:6:7::]", "[::2:3:4:5:6:7:8]", "[1::8]", "[1:2:3:4:5:6::8]",
        "[ffff:FFFF::0]", "[::ffff:192.0.2.1]", "[1:2:3:4:5:6:1.2.3.4]", "[::1.2.3.4]",
        "[1::1.2.3.4]", "[1:2:3:4:5::1.2.3.4]", "[::255.255.255.255]", "[::0.0.0.0]",
        "[v1.a]", "[V1.a]", "[vF0.a:b:!]", "[v1.~]",
        /* IPv4-shaped reg-names are reg-names: any digits go. */
        "256.1.1.1", "01.1.1.1", "1.2.3", "1.2.3.4.5",
    };
    static const char *bad[] = {
        "[1:2:3:4:5:6:7]",   "[1:2:3:4:5:6:7:8:9]", "[1:2:3:4:5:6:7:8::]", "[::1:2:3:4:5:6:7:8]",
        "[1::2::3]",         "[:1::]",              "[1:]",                "[:1]",
        "[:::]",             "[1:::2]",             "[12345::]",           "[g::]",
        "[::256.1.1.1]",     "[::01.1.1.1]",        "[::1.2.3]",           "[::1.2.3.4.5]",
        "[1.2.3.4]",         "[::1.2.3.4:1]",       "[1:2:3:4:5:6:7:1.2.3.4]",
        "[1:2:3:4:5:6::1.2.3.4]", "[::1%25eth0]",   "[v.a]",               "[v1]",
        "[v1.]",             "[vg.a]",              "[v1.a/b]",            "[x1.a]",
        "[::1",              "[",                   "[]",
    };
    char s[128];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(s, sizeof s, "http://%s/", good[i]);
        if (get(s) != 0)
            fail_msg("rejected host %s", good[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(s, sizeof s, "http://%s/", bad[i]);
        if (get(s) != -400)
            fail_msg("accepted host %s", bad[i]);
    }
}

static void test_authority_form(void **state)
{
    (void)state;
    int C = HP_METHOD_CONNECT, F = HP_TARGET_AUTHORITY;
    accepted("example.com:443", C, F, NULL, NULL, "example.com:443");
    accepted("[::1]:8443", C, F, NULL, NULL, "[::1]:8443");
    accepted("192.0.2.1:0", C, F, NULL, NULL, "192.0.2.1:0");
    accepted("h%41:1", C, F, NULL, NULL, "h%41:1");
    static const char *bad[] = {
        "example.com", "example.com:", ":443",        "[::1]",     "[::1]443", "h:443/",
        "h:443?",      "h:44 3",       "u@h:443",     "h:-1",      "h:1:2",    "*",
        "/",           "/h:443",       "http://h:443", "h:443#",   "[::1:443", "h\\:1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        rejected(bad[i], C);
    /* Only CONNECT uses it: for others it is an absolute-URI of scheme
     * "example.com", which is not http. */
    rejected("example.com:443", HP_METHOD_GET);
    rejected("example.com:443", HP_METHOD_OPTIONS);
}

static void test_asterisk_form(void **state)
{
    (void)state;
    accepted("*", HP_METHOD_OPTIONS, HP_TARGET_ASTERISK, NULL, NULL, NULL);
    for (int m = HP_METHOD_UNKNOWN; m <= HP_METHOD_CONNECT; m++)
        if (m != HP_METHOD_OPTIONS)
            rejected("*", m);
    rejected("**", HP_METHOD_OPTIONS);
    rejected("*?", HP_METHOD_OPTIONS);
    rejected("*/", HP_METHOD_OPTIONS);
}

/* The longest target a span can describe, and one byte more. */
static void test_length_limit(void **state)
{
    (void)state;
    size_t n = HP_HTTP_MAX_HEAD + 1;
    char *s = malloc(n);
    assert_non_null(s);
    memset(s, 'a', n);
    s[0] = '/';
    s[100] = '?';
    hp_target_t t;
    assert_int_equal(parse_n(s, n - 1, HP_METHOD_GET, &t), 0);
    assert_int_equal(t.path.len, 100);
    assert_int_equal(t.query.off, 101);
    assert_int_equal(t.query.len, n - 1 - 101);
    assert_int_equal(parse_n(s, n, HP_METHOD_GET, &t), -400);
    free(s);
}

/* A '%' at the very end, one and two bytes before it: the triplet check
 * must not look past the target (ASan). */
static void test_pct_at_end(void **state)
{
    (void)state;
    assert_int_equal(get("/%"), -400);
    assert_int_equal(get("/%4"), -400);
    assert_int_equal(get("/%41"), 0);
    assert_int_equal(get("/?%"), -400);
    assert_int_equal(get("/?%4"), -400);
    assert_int_equal(get("/?%41"), 0);
    assert_int_equal(get("http://%"), -400);
    assert_int_equal(get("http://%4"), -400);
    assert_int_equal(get("http://%41"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_origin_form),
        cmocka_unit_test(test_origin_form_rejections),
        cmocka_unit_test(test_every_byte),
        cmocka_unit_test(test_absolute_form),
        cmocka_unit_test(test_absolute_form_rejections),
        cmocka_unit_test(test_ip_literals),
        cmocka_unit_test(test_authority_form),
        cmocka_unit_test(test_asterisk_form),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_pct_at_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
