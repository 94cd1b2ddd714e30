/*
 * test_method.c - the method table (src/http/method.c): names and lengths,
 * router bits, lookups both ways, and agreement with the request parser's
 * own recogniser, which must produce the same ids.
 */
#include "hotpath/http_method.h"
#include "hotpath/http_parser.h"
#include "hotpath/router.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void test_table(void **state)
{
    (void)state;
    uint32_t bits = 0;
    assert_null(hp_method_table[HP_METHOD_UNKNOWN].name);
    for (int id = 1; id < HP_METHOD_COUNT; id++) {
        const hp_method_info_t *m = &hp_method_table[id];
        assert_non_null(m->name);
        assert_int_equal(m->len, strlen(m->name));
        assert_int_equal(hp_method_lookup(m->name, m->len), id);
        /* Each router bit belongs to one method, and only routed ones have one. */
        assert_int_equal(m->router_bit != 0, id < HP_METHOD_ROUTED);
        assert_int_equal(bits & m->router_bit, 0);
        bits |= m->router_bit;
        if (m->router_bit)
            assert_int_equal(hp_method_of_router_bit(m->router_bit), id);
        assert_int_equal(hp_method_router_bit((unsigned)id), m->router_bit);
    }
    assert_int_equal(bits, HP_ROUTER_ALL_METHODS);
    assert_int_equal(hp_method_router_bit(HP_METHOD_UNKNOWN), 0);
    assert_int_equal(hp_method_router_bit(HP_METHOD_COUNT), 0);
    assert_int_equal(hp_method_of_router_bit(0), HP_METHOD_UNKNOWN);
    assert_int_equal(hp_method_of_router_bit(1u << 31), HP_METHOD_UNKNOWN);
}

static void test_lookup_unknown(void **state)
{
    (void)state;
    const char *const tokens[] = {"", "get", "GE", "GETS", "PURGE", "OPTION", "CONNECTS"};
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++)
        assert_int_equal(hp_method_lookup(tokens[i], strlen(tokens[i])), HP_METHOD_UNKNOWN);
    assert_int_equal(hp_method_lookup("GETX", 3), HP_METHOD_GET); /* only len bytes are read */
}

/* The parser recognises methods with its own switch (parser.c method_id):
 * it must give every token the table's id, and answer 501 to the others.
 * Returns the id, or the parser's negative status. */
static int parsed_id(const char *method)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%s / HTTP/1.1\r\nHost: a\r\n\r\n", method);
    hp_http_req_t req;
    hp_http_field_t fields[100];
    const hp_http_limits_t lim = HP_HTTP_LIMITS_DEFAULT;
    hp_http_req_init(&req);
    int r = hp_http_parse(&req, fields, buf, (size_t)n, &lim);
    if (r < 0)
        return r;
    assert_int_equal(r, n);
    return req.method_id;
}

static void test_parser_agrees(void **state)
{
    (void)state;
    for (int id = 1; id < HP_METHOD_COUNT; id++)
        assert_int_equal(parsed_id(hp_method_table[id].name), id);
    assert_int_equal(parsed_id("PURGE"), -501);
    assert_int_equal(parsed_id("GETS"), -501);
}

int main(void)
{
    hp_http_parser_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_lookup_unknown),
        cmocka_unit_test(test_parser_agrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
