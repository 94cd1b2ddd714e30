/*
 * test_router.c - unit tests for src/http/router.c: static hash routes,
 * every precedence rule (all 64 subsets of the six kinds at one position),
 * backtracking, the accept/reject boundaries of int, uuid and slug,
 * catch-alls, trailing slashes, per-method handlers with HEAD via GET,
 * 404/405/Allow, every conflict and malformed pattern, a property test of
 * 1,000 random routes inserted in several random orders against a
 * brute-force reference matcher, an out-of-memory sweep over every shape
 * of insertion with the exact number of allocations each makes, the exact
 * conflict messages, and zero allocations while matching.
 *
 * Leaks: under ASan every test ends with a LeakSanitizer scan (teardown),
 * and the OOM sweep frees every half-built router it makes.
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
#include "hotpath/router.h"

#define H(x) ((void *)(uintptr_t)(x))

/* Per-test leak check in sanitizer builds: LeakSanitizer scans the heap
 * now, so a leak is pinned on the test that made it. (Plain builds have no
 * reliable count of freed bytes: hp_free is not counted and glibc's
 * mallinfo counts cached chunks as in use.) */
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#ifdef HAVE_LSAN
int __lsan_do_recoverable_leak_check(void);
#endif

static int teardown(void **state)
{
    (void)state;
#ifdef HAVE_LSAN
    assert_int_equal(__lsan_do_recoverable_leak_check(), 0);
#endif
    return 0;
}

static void ok(const hp_router_t *r)
{
    assert_int_equal(hp_router_validate(r), 0);
}

/* Adds and asserts success, then validates. */
static void add(hp_router_t *r, uint32_t methods, const char *pat, void *h)
{
    char err[256];
    int rc = hp_router_add(r, methods, pat, h, h, err, sizeof(err));
    if (rc != 0)
        fail_msg("add %s: %d %s", pat, rc, err);
    assert_string_equal(err, "");
    ok(r);
}

static int match(const hp_router_t *r, uint32_t method, const char *path, hp_route_match_t *m)
{
    return hp_router_match(r, method, path, strlen(path), m);
}

/* The handler that GET on path reaches, or NULL for 404/405. */
static void *get_h(const hp_router_t *r, const char *path)
{
    hp_route_match_t m;
    return match(r, HP_ROUTER_GET, path, &m) == 200 ? m.handler : NULL;
}

static void assert_param(const hp_route_match_t *m, uint32_t i, const char *name, int type,
                         const char *value)
{
    assert_true(i < m->nparams);
    const hp_route_param_t *p = &m->params[i];
    assert_int_equal(p->name_len, strlen(name));
    assert_memory_equal(p->name, name, p->name_len);
    assert_int_equal(p->type, type);
    assert_int_equal(p->len, strlen(value));
    assert_memory_equal(p->value, value, p->len);
}

static void test_empty_and_new_oom(void **state)
{
    (void)state;
    hp_router_t *r = hp_router_new();
    assert_non_null(r);
    ok(r);
    assert_int_equal(hp_router_count(r), 0);
    hp_route_match_t m;
    assert_int_equal(match(r, HP_ROUTER_GET, "/", &m), 404);
    assert_int_equal(match(r, HP_ROUTER_GET, "", &m), 404);
    assert_null(m.pattern);
    assert_int_equal(m.allow, 0);
    hp_router_free(r);
    hp_router_free(NULL);
    int failures = 0;
    for (uint64_t n = 1;; n++) {
        hp_alloc_fail_after(n, 0);
        r = hp_router_new();
        hp_alloc_fail_after(0, 0);
        if (r) {
            ok(r);
            hp_router_free(r);
            break;
        }
        failures++;
    }
    assert_int_equal(failures, 2); /* the router, then the root */
}

static void test_static_routes(void **state)
{
    (void)state;
    hp_router_t *r = hp_router_new();
    add(r, HP_ROUTER_GET, "/health", H(1));
    add(r, HP_ROUTER_GET, "/metrics", H(2));
    add(r, HP_ROUTER_GET, "/", H(3));
    add(r, HP_ROUTER_GET, "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/0123456789", H(4));
    add(r, HP_ROUTER_GET, "/héllo", H(5)); /* raw UTF-8 bytes */
    assert_int_equal(hp_router_count(r), 5);
    assert_ptr_equal(get_h(r, "/health"), H(1));
    assert_ptr_equal(get_h(r, "/metrics"), H(2));
    assert_ptr_equal(get_h(r, "/"), H(3));
    assert_ptr_equal(get_h(r, "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/0123456789"),
                     H(4));
    assert_ptr_equal(get_h(r, "/héllo"), H(5));
    const char *miss[] = {"", "/healt", "/health/", "/healthz", "//health", "/HEALTH", "/m",
                          "/a/b", "/metrics?x"};
    for (size_t i = 0; i < sizeof(miss) / sizeof(miss[0]); i++)
        assert_null(get_h(r, miss[i]));
    /* The path is not NUL-terminated: only len bytes count. */
    hp_route_match_t m;
    assert_int_equal(hp_router_match(r, HP_ROUTER_GET, "/healthXYZ", 7, &m), 200);
    assert_ptr_equal(m.handler, H(1));
    assert_string_equal(m.pattern, "/health");
    assert_int_equal(m.nparams, 0);
    hp_router_free(r);
}

/* The six kinds that can compete at one position, in precedence order. */
static const char *const kind_pat[6] = {"/p/new", "/p/{i:int}", "/p/{u:uuid}", "/p/{s:slug}",
                                        "/p/{g}", "/p/{r:*}"};

/* Paths and, per kind, whether that kind accepts it. */
static const struct {
    const char *path;
    bool acc[6];
} kind_paths[] = {
    {"/p/new", {1, 0, 0, 1, 1, 1}},
    {"/p/42", {0, 1, 0, 1, 1, 1}},
    {"/p/-42", {0, 1, 0, 1, 1, 1}},
    {"/p/123e4567-e89b-12d3-a456-426614174000", {0, 0, 1, 1, 1, 1}},
    {"/p/123E4567-E89B-12D3-A456-426614174000", {0, 0, 1, 0, 1, 1}},
    {"/p/news", {0, 0, 0, 1, 1, 1}},
    {"/p/Zed", {0, 0, 0, 0, 1, 1}},
    {"/p/", {0, 0, 0, 0, 0, 1}},
    {"/p/a/b", {0, 0, 0, 0, 0, 1}},
    {"/p", {0, 0, 0, 0, 0, 0}},
};

static void test_precedence_all_subsets(void **state)
{
    (void)state;
    for (unsigned set = 0; set < 64; set++) {
        hp_router_t *r = hp_router_new();
        for (int k = 0; k < 6; k++)
            if (set & (1u << k))
                add(r, HP_ROUTER_GET, kind_pat[k], H(k + 1));
        for (size_t t = 0; t < sizeof(kind_paths) / sizeof(kind_paths[0]); t++) {
            int want = -1;
            for (int k = 0; k < 6 && want < 0; k++)
                if ((set & (1u << k)) && kind_paths[t].acc[k])
                    want = k;
            hp_route_match_t m;
            int st = match(r, HP_ROUTER_GET, kind_paths[t].path, &m);
            if (want < 0) {
                assert_int_equal(st, 404);
                continue;
            }
            assert_int_equal(st, 200);
            assert_ptr_equal(m.handler, H(want + 1));
            assert_string_equal(m.pattern, kind_pat[want]);
            assert_int_equal(m.nparams, want == 0 ? 0 : 1);
            static const int want_type[6] = {0, HP_ROUTE_PARAM_INT, HP_ROUTE_PARAM_UUID,
                                             HP_ROUTE_PARAM_SLUG, HP_ROUTE_PARAM_SEGMENT,
                                             HP_ROUTE_PARAM_REST};
            if (want)
                assert_int_equal(m.params[0].type, want_type[want]);
        }
        hp_router_free(r);
    }
}

static void test_backtracking(void **state)
{
    (void)state;
    hp_router_t *r = hp_router_new();
    add(r, HP_ROUTER_GET, "/a/b/c", H(1));
    add(r, HP_ROUTER_GET, "/a/{x}/d", H(2));
    add(r, HP_ROUTER_GET, "/users/new", H(3));
    add(r, HP_ROUTER_GET, "/users/{id}/edit", H(4));
    add(r, HP_ROUTER_GET, "/t/{id:int}/x", H(5));
    add(r, HP_ROUTER_GET, "/t/{s:slug}/y", H(6));
    add(r, HP_ROUTER_GET, "/f/{a}/b", H(7));
    add(r, HP_ROUTER_GET, "/f/{r:*}", H(8));
    add(r, HP_ROUTER_GET, "/g/{a:int}/{b:int}/z", H(9));
    add(r, HP_ROUTER_GET, "/g/{a:int}/{c}/w", H(10));
    add(r, HP_ROUTER_GET, "/g/{s:slug}/{c}/z", H(11));
    hp_route_match_t m;
    assert_int_equal(match(r, HP_ROUTER_GET, "/a/b/d", &m), 200); /* static b fails at d */
    assert_ptr_equal(m.handler, H(2));
    assert_int_equal(m.nparams, 1);
    assert_param(&m, 0, "x", HP_ROUTE_PARAM_SEGMENT, "b");
    assert_ptr_equal(get_h(r, "/a/b/c"), H(1));
    assert_ptr_equal(get_h(r, "/users/new/edit"), H(4)); /* static "new" is a prefix */
    assert_ptr_equal(get_h(r, "/users/newer/edit"), H(4));
    assert_ptr_equal(get_h(r, "/t/5/y"), H(6)); /* int fails deeper, slug takes it */
    assert_ptr_equal(get_h(r, "/t/5/x"), H(5));
    assert_int_equal(match(r, HP_ROUTER_GET, "/f/x/c", &m), 200); /* segment fails, rest */
    assert_ptr_equal(m.handler, H(8));
    assert_param(&m, 0, "r", HP_ROUTE_PARAM_REST, "x/c");
    assert_int_equal(match(r, HP_ROUTER_GET, "/g/1/2/w", &m), 200); /* int,int fails; int,seg */
    assert_ptr_equal(m.handler, H(10));
    assert_int_equal(m.nparams, 2); /* the failed {b} was dropped */
    assert_param(&m, 0, "a", HP_ROUTE_PARAM_INT, "1");
    assert_param(&m, 1, "c", HP_ROUTE_PARAM_SEGMENT, "2");
    assert_int_equal(m.params[0].i, 1);
    assert_int_equal(match(r, HP_ROUTER_GET, "/g/1/x/z", &m), 200); /* both ints fail; slug */
    assert_ptr_equal(m.handler, H(11));
    assert_int_equal(m.nparams, 2);
    assert_param(&m, 0, "s", HP_ROUTE_PARAM_SLUG, "1");
    assert_int_equal(m.params[0].i, 0);
    assert_param(&m, 1, "c", HP_ROUTE_PARAM_SEGMENT, "x");
    assert_int_equal(match(r, HP_ROUTER_GET, "/g/1/x/q", &m), 404);
    assert_int_equal(m.nparams, 0);
    hp_router_free(r);
}

/* One typed route; returns whether seg is accepted (and the int value). */
static bool accepts(hp_router_t *r, const char *prefix, const char *seg, int64_t *iv)
{
    char path[256];
    snprintf(path, sizeof(path), "%s%s", prefix, seg);
    hp_route_match_t m;
    int st = match(r, HP_ROUTER_GET, path, &m);
    if (st != 200)
        return false;
    assert_int_equal(m.nparams, 1);
    assert_int_equal(m.params[0].len, strlen(seg));
    if (iv)
        *iv = m.params[0].i;
    return true;
}

static void test_int_bounds(void **state)
{
    (void)state;
    hp_router_t *r = hp_router_new();
    add(r, HP_ROUTER_GET, "/i/{n:int}", H(1));
    static const struct {
        const char *s;
        bool ok;
        int64_t v;
    } t[] = {
        {"0", 1, 0},
        {"7", 1, 7},
        {"-7", 1, -7},
        {"1234567890", 1, 1234567890},
        {"9223372036854775807", 1, INT64_MAX},
        {"-9223372036854775808", 1, INT64_MIN},
        {"9223372036854775808", 0, 0},  /* one past INT64_MAX */
        {"-9223372036854775809", 0, 0}, /* one past INT64_MIN */
        {"9999999999999999999", 0, 0},
        {"18446744073709551616", 0, 0}, /* 2^64: would wrap a uint64_t */
        {"00000000000000000001", 0, 0},
        {"-", 0, 0},
        {"+1", 0, 0},
        {"01", 0, 0}, /* leading zeros are rejected: one spelling per value */
        {"00", 0, 0},
        {"-0", 0, 0},
        {"-01", 0, 0},
        {"1a", 0, 0},
        {"a1", 0, 0},
        {"1-", 0, 0},
        {"--1", 0, 0},
        {" 1", 0, 0},
        {"1.0", 0, 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int64_t v = 12345;
        bool got = accepts(r, "/i/", t[i].s, &v);
        if (got != t[i].ok)
            fail_msg("int '%s': got %d", t[i].s, got);
        if (got)
            assert_true(v == t[i].v);
    }
    assert_null(get_h(r, "/i/")); /* empty segment */
    hp_router_free(r);
}

static void test_uuid_and_slug_bounds(void **state)
{
    (void)state;
    hp_router_t *r = hp_router_new();
    add(r, HP_ROUTER_GET, "/u/{k:uuid}", H(1));
    add(r, HP_ROUTER_GET, "/s/{k:slug}", H(2));
    static const struct {
        const char *s;
        bool ok;
    } u[] = {
        {"123e4567-e89b-12d3-a456-426614174000", 1},
        {"ABCDEF01-2345-6789-ABCD-EF0123456789", 1},
        {"abcdef01-2345-6789-ABCD-ef0123456789", 1},
        {"00000000-0000-0000-0000-000000000000", 1},
        {"123e4567-e89b-12d3-a456-42661417400", 0},   /* last group 11 */
        {"123e4567-e89b-12d3-a456-4266141740000", 0}, /* last group 13 */
        {"123e456-7e89b-12d3-a456-426614174000", 0},  /* groups 7-5 */
        {"123e4567-e89-b12d3-a456-426614174000", 0},
        {"123e4567-e89b-12d-3a456-426614174000", 0},
        {"123e4567-e89b-12d3-a45-6426614174000", 0},
        {"123e4567e89b12d3a456426614174000", 0},       /* no dashes */
        {"g23e4567-e89b-12d3-a456-426614174000", 0},  /* non-hex */
        {"123e4567-e89b-12d3-a456-42661417400z", 0},
        {"123e4567_e89b_12d3_a456_426614174000", 0},
        {"{123e4567-e89b-12d3-a456-426614174000}", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++)
        if (accepts(r, "/u/", u[i].s, NULL) != u[i].ok)
            fail_msg("uuid '%s'", u[i].s);
    static const struct {
        const char *s;
        bool ok;
    } sl[] = {
        {"a", 1}, {"abc-def", 1}, {"0", 1}, {"-", 1}, {"a--b-", 1}, {"hello-world-2024", 1},
        {"A", 0}, {"abC", 0}, {"a_b", 0}, {"a.b", 0}, {"a b", 0}, {"é", 0}, {"a%20b", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof(sl) / sizeof(sl[0]); i++)
        if (accepts(r, "/s/", sl[i].s, NULL) != sl[i].ok)
            fail_msg("slug '%s'", sl[i].s);
    hp_router_free(r);
}

static void test_catch_all(void **state)
{
    (void)state;
    hp_router_t *r = hp_router_new();
    add(r, HP_ROUTER_GET, "/static/{path:*}", H(1));
    add(r, HP_ROUTER_GET, "/static/index.html", H(2));
    hp_route_match_t m;
    assert_int_equal(match(r, HP_ROUTER_GET, "/static/", &m), 200);
    assert_ptr_equal(m.handler, H(1));
    assert_param(&m, 0, "path", HP_ROUTE_PARAM_REST, "");
    const char *p = "/static/css/site/main.css";
    assert_int_equal(match(r, HP_ROUTER_GET, p, &m), 200);
    assert_param(&m, 0, "path", HP_ROUTE_PARAM_REST, "css/site/main.css");
    assert_ptr_equal(m.params[0].value, p + 8); /* a slice, not a copy */
    assert_int_equal(match(r, HP_ROUTER_GET, "/static//x/", &m), 200);
    assert_param(&m, 0, "path", HP_ROUTE_PARAM_REST, "/x/");
    assert_ptr_equal(get_h(r, "/static/index.html"), H(2));
    assert_ptr_equal(get_h(r, "/static/index.html/x"), H(1));
    assert_null(get_h(r, "/static"));
    assert_null(get_h(r, "/stat"));
    /* A root catch-all takes everything else, "/" included. */
    add(r, HP_ROUTER_GET, "/{all:*}", H(3));
    assert_int_equal(match(r, HP_ROUTER_GET, "/", &m), 200);
    assert_ptr_equal(m.handler, H(3));
    assert_param(&m, 0, "all", HP_ROUTE_PARAM_REST, "");
    assert_ptr_equal(get_h(r, "/static"), H(3));
    assert_null(get_h(r, "")); /* not a path */
    assert_null(get_h(r, "x"));
    hp_router_free(r);
}

static void test_trailing_slash(void **state)
{
    (void)state;
    hp_router_t *r = hp_router_new();
    add(r, HP_ROUTER_GET, "/a", H(1));
    add(r, HP_ROUTER_GET, "/b/{x}", H(2));
    assert_ptr_equal(get_h(r, "/a"), H(1));
    assert_null(get_h(r, "/a/")); /* different paths: no redirect, no folding */
    add(r, HP_ROUTER_GET, "/a/", H(3));
    assert_ptr_equal(get_h(r, "/a/"), H(3));
    assert_ptr_equal(get_h(r, "/a"), H(1));
    assert_ptr_equal(get_h(r, "/b/c"), H(2));
    assert_null(get_h(r, "/b/c/"));
    assert_null(get_h(r, "/b/"));
    add(r, HP_ROUTER_GET, "/b/{x}/", H(4));
    assert_ptr_equal(get_h(r, "/b/c/"), H(4));
    hp_router_free(r);
}

static void test_methods_405_head(void **state)
{
    (void)state;
    hp_router_t *r = hp_router_new();
    add(r, HP_ROUTER_GET, "/r/{id:int}", H(1));
    add(r, HP_ROUTER_POST | HP_ROUTER_PUT, "/r/{id:int}", H(2));
    add(r, HP_ROUTER_POST, "/only-post", H(3));
    add(r, HP_ROUTER_GET, "/h", H(4));
    add(r, HP_ROUTER_HEAD, "/h", H(5));
    assert_int_equal(hp_router_count(r), 3);
    hp_route_match_t m;
    char buf[128];
    assert_int_equal(match(r, HP_ROUTER_GET, "/r/5", &m), 200);
    assert_ptr_equal(m.handler, H(1));
    assert_int_equal(m.allow, HP_ROUTER_GET | HP_ROUTER_HEAD | HP_ROUTER_POST | HP_ROUTER_PUT);
    assert_int_equal(match(r, HP_ROUTER_HEAD, "/r/5", &m), 200); /* via GET */
    assert_ptr_equal(m.handler, H(1));
    assert_int_equal(match(r, HP_ROUTER_PUT, "/r/5", &m), 200);
    assert_ptr_equal(m.handler, H(2));
    assert_ptr_equal(m.udata, H(2));
    assert_int_equal(match(r, HP_ROUTER_DELETE, "/r/5", &m), 405);
    assert_null(m.handler);
    assert_string_equal(m.pattern, "/r/{id:int}");
    assert_int_equal(m.nparams, 1);
    hp_router_allow_str(m.allow, buf, sizeof(buf));
    assert_string_equal(buf, "GET, HEAD, POST, PUT");
    assert_int_equal(match(r, HP_ROUTER_HEAD, "/only-post", &m), 405); /* no GET to borrow */
    hp_router_allow_str(m.allow, buf, sizeof(buf));
    assert_string_equal(buf, "POST");
    assert_int_equal(match(r, HP_ROUTER_HEAD, "/h", &m), 200); /* own HEAD wins */
    assert_ptr_equal(m.handler, H(5));
    /* Not exactly one known method bit: never a handler. */
    assert_int_equal(match(r, 0, "/h", &m), 405);
    assert_int_equal(match(r, HP_ROUTER_GET | HP_ROUTER_POST, "/h", &m), 405);
    assert_int_equal(match(r, 1u << 7, "/h", &m), 405);
    assert_int_equal(match(r, HP_ROUTER_GET, "/r/x", &m), 404);
    assert_int_equal(m.allow, 0);
    assert_null(m.pattern);
    assert_null(m.handler);
    hp_router_free(r);
}

static void test_allow_str(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(hp_router_allow_str(0, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    size_t n = hp_router_allow_str(0x7f, buf, sizeof(buf));
    assert_string_equal(buf, "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");
    assert_int_equal(n, strlen(buf));
    hp_router_allow_str(HP_ROUTER_OPTIONS | HP_ROUTER_DELETE, buf, sizeof(buf));
    assert_string_equal(buf, "DELETE, OPTIONS");
    char small[6];
    memset(small, 'x', sizeof(small));
    assert_int_equal(hp_router_allow_str(HP_ROUTER_GET | HP_ROUTER_POST, small, sizeof(small)),
                     9);
    assert_string_equal(small, "GET, ");
    assert_int_equal(hp_router_allow_str(HP_ROUTER_GET, NULL, 0), 3);
}

/* Asserts rc and a one-line, non-empty message, and that r is unchanged. */
static void expect_add(hp_router_t *r, uint32_t methods, const char *pat, int want)
{
    char err[128];
    size_t before = hp_router_count(r);
    int rc = hp_router_add(r, methods, pat, H(99), NULL, err, sizeof(err));
    if (rc != want)
        fail_msg("add '%.60s': %d, want %d (%s)", pat, rc, want, err);
    if (want) {
        assert_true(err[0] != '\0');
        assert_null(strchr(err, '\n'));
        assert_int_equal(hp_router_count(r), before);
        /* A NULL buffer is fine too. */
        assert_int_equal(hp_router_add(r, methods, pat, H(99), NULL, NULL, 0), want);
    }
    ok(r);
}

static void test_conflicts(void **state)
{
    (void)state;
    hp_router_t *r = hp_router_new();
    add(r, HP_ROUTER_GET, "/x", H(1));
    add(r, HP_ROUTER_GET, "/u/{id:int}", H(2));
    add(r, HP_ROUTER_GET, "/u/{id:int}/posts/{pid}", H(3));
    add(r, HP_ROUTER_GET, "/f/{p:*}", H(4));
    expect_add(r, HP_ROUTER_GET, "/x", -EEXIST);
    expect_add(r, HP_ROUTER_GET, "/u/{id:int}", -EEXIST);
    /* Partly new methods: all or nothing. */
    expect_add(r, HP_ROUTER_GET | HP_ROUTER_POST, "/x", -EEXIST);
    hp_route_match_t m;
    assert_int_equal(match(r, HP_ROUTER_POST, "/x", &m), 405);
    assert_int_equal(m.allow, HP_ROUTER_GET | HP_ROUTER_HEAD);
    expect_add(r, HP_ROUTER_GET, "/u/{uid:int}", -EEXIST);
    expect_add(r, HP_ROUTER_POST, "/u/{uid:int}/x", -EEXIST);
    expect_add(r, HP_ROUTER_GET, "/u/{id:int}/posts/{other}", -EEXIST);
    expect_add(r, HP_ROUTER_GET, "/f/{q:*}", -EEXIST);
    /* Same name, or another type, at the same position: fine. */
    expect_add(r, HP_ROUTER_GET, "/u/{id:int}/x", 0);
    expect_add(r, HP_ROUTER_GET, "/u/{uid}", 0);
    expect_add(r, HP_ROUTER_GET, "/u/{uid:slug}", 0);
    expect_add(r, HP_ROUTER_GET, "/f/{p}", 0);
    expect_add(r, HP_ROUTER_POST, "/x", 0);
    char err[128];
    hp_router_add(r, HP_ROUTER_GET, "/u/{uid:int}", NULL, NULL, err, sizeof(err));
    assert_non_null(strstr(err, "{uid:int}"));
    assert_non_null(strstr(err, "{id:int}"));
    assert_int_equal(hp_router_count(r), 8);
    hp_router_free(r);
}

static void test_malformed(void **state)
{
    (void)state;
    hp_router_t *r = hp_router_new();
    add(r, HP_ROUTER_GET, "/a/{b}", H(1));
    static const char *const bad[] = {
        "", "a", "a/b", "{x}", "/a{", "/{", "/{id", "/{id:int", "/{id:int/x", "/{:int}", "/{}",
        "/{:}", "/{id:integer}", "/{id:}", "/{id:INT}", "/{id::int}", "/{a}/{a}", "/{a}/{a:int}",
        "/{r:*}/x", "/{r:*}/", "/x{id}", "/{id}x", "/{id}{x}", "/a}", "/}", "/{a b}", "/{a{b}}",
        "/{a-b}", "/a b", "/a?b", "/a#b", "/a\tb", "/a\x7f",
        "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_add(r, HP_ROUTER_GET, bad[i], -EINVAL);
    expect_add(r, HP_ROUTER_GET, "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}", 0); /* 8 is the limit */
    char name[300];
    snprintf(name, sizeof(name), "/n/{%0255d}", 0);
    expect_add(r, HP_ROUTER_GET, name, 0);
    snprintf(name, sizeof(name), "/n/{%0256d}", 0);
    expect_add(r, HP_ROUTER_GET, name, -EINVAL);
    char *lng = malloc(5000);
    memset(lng, 'a', 4999);
    lng[0] = '/';
    lng[4999] = '\0';
    expect_add(r, HP_ROUTER_GET, lng, -EINVAL);
    lng[4096] = '\0';
    expect_add(r, HP_ROUTER_GET, lng, 0);
    assert_int_equal(get_h(r, lng), H(99));
    free(lng);
    expect_add(r, 0, "/ok", -EINVAL);
    expect_add(r, 1u << 7, "/ok", -EINVAL);
    char err[64];
    assert_int_equal(hp_router_add(NULL, HP_ROUTER_GET, "/", NULL, NULL, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(hp_router_add(r, HP_ROUTER_GET, NULL, NULL, NULL, err, sizeof(err)),
                     -EINVAL);
    /* A tiny buffer still gets a NUL-terminated (truncated) message. */
    assert_int_equal(hp_router_add(r, HP_ROUTER_GET, "/{", NULL, NULL, err, 4), -EINVAL);
    assert_int_equal(strlen(err), 3);
    hp_router_free(r);
}

static void test_many_children_and_params(void **state)
{
    (void)state;
    hp_router_t *r = hp_router_new();
    int n = 0;
    for (int c = 0x21; c < 0x100; c++) {
        if (c == '?' || c == '#' || c == '{' || c == '}' || c == 0x7f)
            continue;
        char pat[8] = {'/', 'k', '/', (char)c, 0};
        add(r, HP_ROUTER_GET, pat, H(c));
        n++;
    }
    add(r, HP_ROUTER_GET, "/k/{x:int}", H(1000));
    for (int c = 0x21; c < 0x100; c++) {
        if (c == '?' || c == '#' || c == '{' || c == '}' || c == 0x7f)
            continue;
        char path[8] = {'/', 'k', '/', (char)c, 0};
        assert_ptr_equal(get_h(r, path), H(c));
    }
    assert_ptr_equal(get_h(r, "/k/77"), H(1000));
    assert_int_equal(hp_router_count(r), (size_t)n + 1);
    /* Eight parameters, each a slice of the path with its parsed int. */
    add(r, HP_ROUTER_GET, "/m/{a:int}/{b:uuid}/{c:slug}/{d}/{e:int}/{f}/{g:slug}/{h:*}", H(2));
    const char *p = "/m/-5/123e4567-e89b-12d3-a456-426614174000/ab-c/Q/9/x/y/z/w";
    hp_route_match_t m;
    assert_int_equal(match(r, HP_ROUTER_GET, p, &m), 200);
    assert_int_equal(m.nparams, 8);
    assert_param(&m, 0, "a", HP_ROUTE_PARAM_INT, "-5");
    assert_true(m.params[0].i == -5);
    assert_param(&m, 1, "b", HP_ROUTE_PARAM_UUID, "123e4567-e89b-12d3-a456-426614174000");
    assert_param(&m, 2, "c", HP_ROUTE_PARAM_SLUG, "ab-c");
    assert_param(&m, 3, "d", HP_ROUTE_PARAM_SEGMENT, "Q");
    assert_param(&m, 4, "e", HP_ROUTE_PARAM_INT, "9");
    assert_true(m.params[4].i == 9);
    assert_param(&m, 5, "f", HP_ROUTE_PARAM_SEGMENT, "x");
    assert_param(&m, 6, "g", HP_ROUTE_PARAM_SLUG, "y");
    assert_param(&m, 7, "h", HP_ROUTE_PARAM_REST, "z/w");
    for (uint32_t i = 0; i < 8; i++)
        assert_true(m.params[i].value >= p && m.params[i].value + m.params[i].len <= p + strlen(p));
    hp_router_free(r);
}

/* ---- property test against a brute-force reference ---- */

enum { K_STATIC, K_INT, K_UUID, K_SLUG, K_SEG, K_REST }; /* precedence order */
static const char *const statics[] = {"a", "b", "ab", "abc", "users", "new", "x-y", "1", ""};
static const int kind_type[] = {-1, HP_ROUTE_PARAM_INT, HP_ROUTE_PARAM_UUID, HP_ROUTE_PARAM_SLUG,
                                HP_ROUTE_PARAM_SEGMENT, HP_ROUTE_PARAM_REST};

#define MAXSEG 6
struct ref_route {
    int nseg;
    int kind[MAXSEG];
    const char *text[MAXSEG]; /* statics: the text; params: the name */
    char names[MAXSEG][16];
    char pattern[128];
    uint32_t methods;
};

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static void gen_route(struct ref_route *rr)
{
    rr->nseg = 1 + (int)rnd(MAXSEG - 1);
    char *p = rr->pattern;
    for (int i = 0; i < rr->nseg; i++) {
        int k = rnd(2) ? K_STATIC : 1 + (int)rnd(5);
        if (k == K_REST && i != rr->nseg - 1)
            k = K_SEG;
        rr->kind[i] = k;
        /* Only the last segment may be empty: a trailing slash. */
        const char *s = statics[rnd(i == rr->nseg - 1 ? 9 : 8)];
        if (k != K_STATIC) {
            snprintf(rr->names[i], sizeof(rr->names[i]), "%c%d", "-iusgr"[k], i);
            s = rr->names[i];
        }
        rr->text[i] = s;
        static const char *const suf[] = {"", ":int", ":uuid", ":slug", "", ":*"};
        if (k == K_STATIC)
            p += sprintf(p, "/%s", s);
        else
            p += sprintf(p, "/{%s%s}", s, suf[k]);
    }
    rr->methods = rnd(3) ? 1u + rnd(HP_ROUTER_ALL_METHODS) : HP_ROUTER_GET;
}

static bool ref_int(const char *s, size_t n, int64_t *v)
{
    char buf[32], back[32];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    char *end;
    long long x = strtoll(buf, &end, 10);
    if (errno || *end)
        return false;
    snprintf(back, sizeof(back), "%lld", x);
    if (strcmp(back, buf)) /* canonical spelling only */
        return false;
    *v = x;
    return true;
}

static bool ref_accept(int k, const char *s, size_t n, int64_t *v)
{
    *v = 0;
    if (n == 0 || memchr(s, '/', n))
        return false;
    switch (k) {
    case K_INT:
        return ref_int(s, n, v);
    case K_UUID:
        if (n != 36)
            return false;
        for (size_t i = 0; i < n; i++) {
            bool dash = i == 8 || i == 13 || i == 18 || i == 23;
            if (dash ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]) || !s[i])
                return false;
        }
        return true;
    case K_SLUG:
        for (size_t i = 0; i < n; i++)
            if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
                return false;
        return true;
    default:
        return true;
    }
}

/* Matches one route by segments; fills rank[] and params. */
static bool ref_try(const struct ref_route *rr, const char *path, int *rank, hp_route_match_t *m)
{
    const char *seg[64];
    size_t segn[64];
    int n = 0;
    size_t len = strlen(path);
    if (len == 0 || path[0] != '/')
        return false;
    for (size_t i = 1;;) {
        const char *sl = memchr(path + i, '/', len - i);
        size_t e = sl ? (size_t)(sl - path) : len;
        if (n == 64)
            return false;
        seg[n] = path + i;
        segn[n++] = e - i;
        if (!sl)
            break;
        i = e + 1;
    }
    m->nparams = 0;
    int i = 0;
    for (; i < rr->nseg; i++) {
        int k = rr->kind[i];
        rank[i] = k;
        if (k == K_REST) {
            if (i >= n)
                return false;
            hp_route_param_t *p = &m->params[m->nparams++];
            p->name = rr->text[i];
            p->type = HP_ROUTE_PARAM_REST;
            p->value = seg[i];
            p->len = (uint32_t)(path + len - seg[i]);
            p->i = 0;
            return true;
        }
        if (i >= n)
            return false;
        if (k == K_STATIC) {
            if (segn[i] != strlen(rr->text[i]) || memcmp(seg[i], rr->text[i], segn[i]))
                return false;
            continue;
        }
        int64_t v;
        if (!ref_accept(k, seg[i], segn[i], &v))
            return false;
        hp_route_param_t *p = &m->params[m->nparams++];
        p->name = rr->text[i];
        p->type = (uint8_t)kind_type[k];
        p->value = seg[i];
        p->len = (uint32_t)segn[i];
        p->i = v;
    }
    return i == n;
}

static void *handler_of(size_t route, int method)
{
    return H((route << 4) | (uint32_t)(method + 1));
}

/* Reference: the best route by lexicographic per-segment rank. */
static int ref_match(const struct ref_route *rs, size_t nr, uint32_t method, const char *path,
                     hp_route_match_t *out, size_t *which)
{
    int best_rank[MAXSEG];
    int best = -1;
    hp_route_match_t m;
    for (size_t i = 0; i < nr; i++) {
        int rank[MAXSEG];
        if (!ref_try(&rs[i], path, rank, &m))
            continue;
        bool better = best < 0;
        for (int k = 0; !better && k < rs[i].nseg && k < rs[best].nseg; k++) {
            if (rank[k] != best_rank[k]) {
                better = rank[k] < best_rank[k];
                break;
            }
        }
        if (better) {
            best = (int)i;
            memcpy(best_rank, rank, sizeof(rank));
            *out = m;
        }
    }
    if (best < 0)
        return 404;
    *which = (size_t)best;
    uint32_t ms = rs[best].methods;
    out->allow = ms | (ms & HP_ROUTER_GET ? HP_ROUTER_HEAD : 0);
    out->pattern = rs[best].pattern;
    int mi = method && !(method & (method - 1)) && method <= HP_ROUTER_OPTIONS
                 ? __builtin_ctz(method)
                 : -1;
    if (mi >= 0 && !(ms & method) && method == HP_ROUTER_HEAD && (ms & HP_ROUTER_GET))
        mi = 0;
    else if (mi >= 0 && !(ms & method))
        mi = -1;
    if (mi < 0)
        return 405;
    out->handler = handler_of((size_t)best, mi);
    return 200;
}

static void gen_value(char *out, size_t cap, int k, const char *stat)
{
    static const char *const ints[] = {"0", "7", "42", "-3", "01", "-0", "9223372036854775807",
                                       "9223372036854775808", "abc", "1"};
    static const char *const uuids[] = {"123e4567-e89b-12d3-a456-426614174000",
                                        "ABCDEF01-2345-6789-ABCD-EF0123456789",
                                        "123e4567-e89b-12d3-a456-42661417400",
                                        "123e4567-e89b-12d3-a456-42661417400g"};
    static const char *const slugs[] = {"abc", "a-1", "Abc", "new", "x-y", "users"};
    switch (rnd(8) ? k : (int)rnd(6)) {
    case K_STATIC:
        snprintf(out, cap, "%s", rnd(8) ? stat : statics[rnd(9)]);
        break;
    case K_INT:
        snprintf(out, cap, "%s", ints[rnd(10)]);
        break;
    case K_UUID:
        snprintf(out, cap, "%s", uuids[rnd(4)]);
        break;
    case K_SLUG:
        snprintf(out, cap, "%s", slugs[rnd(6)]);
        break;
    case K_SEG:
        snprintf(out, cap, "%s", rnd(2) ? "Zed" : "q");
        break;
    default:
        snprintf(out, cap, "%s", (const char *[]){"", "x", "x/y/z", "a/"}[rnd(4)]);
    }
}

static void gen_path(const struct ref_route *rs, size_t nr, char *path, size_t cap)
{
    size_t n = 0;
    path[0] = '\0';
    if (rnd(3) == 0) {
        /* A path made of random pieces: mostly misses and near misses. */
        int nseg = (int)rnd(MAXSEG + 1);
        for (int i = 0; i < nseg; i++) {
            char v[64];
            gen_value(v, sizeof(v), (int)rnd(5), statics[rnd(9)]);
            n += (size_t)snprintf(path + n, cap - n, "/%s", v);
        }
        return;
    }
    const struct ref_route *rr = &rs[rnd((uint32_t)nr)];
    for (int i = 0; i < rr->nseg; i++) {
        char v[64];
        gen_value(v, sizeof(v), rr->kind[i], rr->kind[i] == K_STATIC ? rr->text[i] : "a");
        n += (size_t)snprintf(path + n, cap - n, "/%s", v);
    }
    if (rnd(10) == 0)
        n += (size_t)snprintf(path + n, cap - n, "/");
    if (rnd(10) == 0)
        n += (size_t)snprintf(path + n, cap - n, "/%s", statics[rnd(9)]);
    if (rnd(20) == 0)
        n = rnd((uint32_t)n + 1); /* cut anywhere */
    path[n] = '\0';
}

static void compare(const hp_router_t *r, const struct ref_route *rs, size_t nr, const char *path,
                    uint32_t method)
{
    hp_route_match_t got, want;
    memset(&want, 0, sizeof(want));
    size_t which = 0;
    int ws = ref_match(rs, nr, method, path, &want, &which);
    int gs = match(r, method, path, &got);
    if (gs != ws)
        fail_msg("%s (method %u): got %d want %d (%s vs %s)", path, method, gs, ws,
                 gs != 404 ? got.pattern : "-", ws != 404 ? want.pattern : "-");
    if (ws == 404)
        return;
    assert_string_equal(got.pattern, want.pattern);
    assert_int_equal(got.allow, want.allow);
    if (ws == 200) {
        assert_ptr_equal(got.handler, want.handler);
        assert_ptr_equal(got.udata, want.handler);
    }
    assert_int_equal(got.nparams, want.nparams);
    for (uint32_t i = 0; i < got.nparams; i++) {
        assert_int_equal(got.params[i].name_len, strlen(want.params[i].name));
        assert_memory_equal(got.params[i].name, want.params[i].name, got.params[i].name_len);
        assert_int_equal(got.params[i].type, want.params[i].type);
        assert_ptr_equal(got.params[i].value, want.params[i].value);
        assert_int_equal(got.params[i].len, want.params[i].len);
        assert_true(got.params[i].i == want.params[i].i);
    }
}

static void test_property_random_routes(void **state)
{
    (void)state;
    enum { NR = 1000, ORDERS = 3, NPATHS = 4000 };
    rng_state = 0x243f6a8885a308d3ull;
    struct ref_route *rs = calloc(NR, sizeof(*rs));
    size_t nr = 0;
    while (nr < NR) {
        gen_route(&rs[nr]);
        bool dup = false;
        for (size_t i = 0; i < nr && !dup; i++)
            dup = strcmp(rs[i].pattern, rs[nr].pattern) == 0;
        if (!dup)
            nr++;
    }
    /* Each route is registered one method at a time, in random order. */
    size_t nreg = 0;
    struct reg {
        uint32_t route;
        int method;
    } *regs = calloc(NR * 7, sizeof(*regs));
    for (size_t i = 0; i < nr; i++)
        for (int k = 0; k < 7; k++)
            if (rs[i].methods & (1u << k))
                regs[nreg++] = (struct reg){(uint32_t)i, k};
    char paths[NPATHS][96];
    for (int i = 0; i < NPATHS; i++)
        gen_path(rs, nr, paths[i], sizeof(paths[i]));
    for (int o = 0; o < ORDERS; o++) {
        for (size_t i = nreg; i > 1; i--) {
            size_t j = rnd((uint32_t)i);
            struct reg t = regs[i - 1];
            regs[i - 1] = regs[j];
            regs[j] = t;
        }
        hp_router_t *r = hp_router_new();
        for (size_t i = 0; i < nreg; i++) {
            size_t ri = regs[i].route;
            void *h = handler_of(ri, regs[i].method);
            char err[128];
            int rc = hp_router_add(r, 1u << regs[i].method, rs[ri].pattern, h, h, err,
                                   sizeof(err));
            if (rc)
                fail_msg("%s: %s", rs[ri].pattern, err);
            ok(r);
        }
        assert_int_equal(hp_router_count(r), nr);
        uint64_t a0 = hp_alloc_count();
        static const uint32_t methods[] = {HP_ROUTER_GET, HP_ROUTER_HEAD, HP_ROUTER_POST,
                                           HP_ROUTER_OPTIONS, 0};
        for (int i = 0; i < NPATHS; i++)
            compare(r, rs, nr, paths[i], methods[rnd(5)]);
        /* Every route's own pattern text as a path (braces and all). */
        for (size_t i = 0; i < nr; i++)
            compare(r, rs, nr, rs[i].pattern, HP_ROUTER_GET);
        assert_int_equal(hp_alloc_count(), a0);
        hp_router_free(r);
    }
    free(regs);
    free(rs);
}

/* ---- out of memory ---- */

static const char *const base_routes[] = {
    "/health", "/users/new", "/users/{id:int}", "/users/{id:int}/posts", "/files/{p:*}",
    "/a/bcd",  "/s1",        "/s2",             "/s3",                   "/s4",
    "/s5",
};

static hp_router_t *base_router(void)
{
    hp_router_t *r = hp_router_new();
    assert_non_null(r);
    for (size_t i = 0; i < sizeof(base_routes) / sizeof(base_routes[0]); i++)
        add(r, HP_ROUTER_GET, base_routes[i], H(i + 1));
    return r;
}

static void test_oom_add(void **state)
{
    (void)state;
    /* One of each insertion shape: split with and without remainder, a
     * new child, a new parameter chain, a route on an existing inner node,
     * the static hash table growing (the 9th static route). */
    static const struct {
        const char *pat, *path;
    } t[] = {
        {"/users/newest", "/users/newest"},
        {"/users/ne", "/users/ne"},
        {"/x/y/{z}/w/{q:*}", "/x/y/1/w/2/3"},
        {"/users/{n}/q/{m:uuid}", "/users/n/q/123e4567-e89b-12d3-a456-426614174000"},
        {"/users/", "/users/"},
        {"/a/b", "/a/b"},
        {"/users/{id:int}/posts/{pid:int}/c", "/users/1/posts/2/c"},
    };
    for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++) {
        int failures = 0;
        for (uint64_t n = 1;; n++) {
            hp_router_t *r = base_router();
            hp_route_match_t m;
            int before = match(r, HP_ROUTER_POST, t[k].path, &m);
            const char *before_pat = m.pattern;
            char err[128];
            hp_alloc_fail_after(n, 0);
            int rc = hp_router_add(r, HP_ROUTER_POST, t[k].pat, H(77), NULL, err, sizeof(err));
            hp_alloc_fail_after(0, 0);
            ok(r);
            if (rc == -ENOMEM) {
                failures++;
                assert_true(err[0] != '\0');
                assert_int_equal(hp_router_count(r), 11);
                assert_int_equal(match(r, HP_ROUTER_POST, t[k].path, &m), before);
                assert_ptr_equal(m.pattern, before_pat);
                hp_router_free(r);
                continue;
            }
            assert_int_equal(rc, 0);
            assert_int_equal(hp_router_count(r), 12);
            assert_int_equal(match(r, HP_ROUTER_POST, t[k].path, &m), 200);
            assert_ptr_equal(m.handler, H(77));
            assert_string_equal(m.pattern, t[k].pat);
            for (size_t i = 0; i < sizeof(base_routes) / sizeof(base_routes[0]); i++)
                if (!strchr(base_routes[i], '{'))
                    assert_ptr_equal(get_h(r, base_routes[i]), H(i + 1));
            hp_router_free(r);
            break;
        }
        assert_true(failures >= 1);
    }
    /* Adding a method to an existing route allocates nothing. */
    hp_router_t *r = base_router();
    uint64_t a0 = hp_alloc_count();
    hp_alloc_fail_after(1, 1);
    assert_int_equal(hp_router_add(r, HP_ROUTER_PUT, "/users/{id:int}", H(5), NULL, NULL, 0), 0);
    hp_alloc_fail_after(0, 0);
    assert_int_equal(hp_alloc_count(), a0);
    ok(r);
    hp_router_free(r);
}

/* Every insertion shape makes a fixed number of allocations: the route,
 * then the grown hash table when a static route needs it, then the nodes
 * of the new branch (a reserved child array counts as one). A step that
 * allocated more, less or twice would change the count. Each failing one
 * reports "<pattern>: out of memory" (test_oom_add checks that the router
 * is unchanged). */
static void test_add_alloc_counts(void **state)
{
    (void)state;
    int bad = 0;
    static const struct {
        const char *pat;
        int allocs;
    } t[] = {
        /* The 9th static route: the route, the grown table, then ... */
        {"/users/", 2},        /* ... nothing more: the node is there */
        {"/users/newest", 4},  /* ... a child array and the child "est" */
        {"/users/ne", 4},      /* ... a split: "ne" and its child array */
        {"/users/nx", 5},      /* ... a split with a remainder: "n", array, "x" */
        /* With parameters: the route, then the branch. */
        {"/users/{id:int}/posts/x", 3},  /* a child array and "/x" */
        {"/users/{n}/q/{m:uuid}", 5},    /* {n}, its array, "/q/", {m} */
        {"/x/y/{z}/w/{q:*}", 6},         /* "x/y/", {z}, array, "/w/", {q} */
    };
    for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++) {
        int failures = 0;
        for (uint64_t n = 1;; n++) {
            hp_router_t *r = base_router();
            char err[128], want[128];
            hp_alloc_fail_after(n, 0);
            int rc = hp_router_add(r, HP_ROUTER_POST, t[k].pat, H(77), NULL, err, sizeof(err));
            hp_alloc_fail_after(0, 0);
            ok(r);
            hp_router_free(r);
            if (rc == 0)
                break;
            assert_int_equal(rc, -ENOMEM);
            snprintf(want, sizeof(want), "%s: out of memory", t[k].pat);
            assert_string_equal(err, want);
            failures++;
        }
        if (failures != t[k].allocs) {
            print_error("%s: %d allocations, expected %d\n", t[k].pat, failures, t[k].allocs);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* The exact messages of the conflict paths, which come from two different
 * steps of an add (the walk down the tree and the existing route). */
static void test_add_conflict_messages(void **state)
{
    (void)state;
    hp_router_t *r = base_router();
    char err[160];
    assert_int_equal(hp_router_add(r, HP_ROUTER_POST | HP_ROUTER_GET, "/health", H(1), NULL, err,
                                   sizeof(err)),
                     -EEXIST);
    assert_string_equal(err, "/health: GET is already registered");
    add(r, HP_ROUTER_POST | HP_ROUTER_PUT, "/health", H(2));
    assert_int_equal(hp_router_add(r, HP_ROUTER_DELETE | HP_ROUTER_PUT, "/health", H(1), NULL, err,
                                   sizeof(err)),
                     -EEXIST);
    assert_string_equal(err, "/health: PUT is already registered");
    /* Several already there: the message names the first in bit order. */
    assert_int_equal(hp_router_add(r, HP_ROUTER_DELETE | HP_ROUTER_PUT | HP_ROUTER_GET, "/health",
                                   H(1), NULL, err, sizeof(err)),
                     -EEXIST);
    assert_string_equal(err, "/health: GET is already registered");
    assert_int_equal(hp_router_add(r, HP_ROUTER_GET, "/users/{uid:int}/posts", H(1), NULL, err,
                                   sizeof(err)),
                     -EEXIST);
    assert_string_equal(
        err, "/users/{uid:int}/posts: {uid:int} conflicts with {id:int} registered at the same "
             "position");
    assert_int_equal(hp_router_add(r, HP_ROUTER_GET, "/files/{q:*}", H(1), NULL, err, sizeof(err)),
                     -EEXIST);
    assert_string_equal(err, "/files/{q:*}: {q:*} conflicts with {p:*} registered at the same "
                             "position");
    assert_int_equal(hp_router_count(r), 11);
    hp_router_free(r);
}

static void test_match_allocates_nothing(void **state)
{
    (void)state;
    hp_router_t *r = base_router();
    add(r, HP_ROUTER_GET, "/p/{u:uuid}/{s:slug}/{g}/{r:*}", H(50));
    static const char *const paths[] = {
        "/health", "/users/12", "/users/12/posts", "/files/a/b/c", "/nope", "/users/x",
        "/p/123e4567-e89b-12d3-a456-426614174000/ab/c/d/e", "/s5", "/users/new",
    };
    uint64_t a0 = hp_alloc_count();
    hp_alloc_fail_after(1, 1); /* any allocation would also fail loudly */
    hp_route_match_t m;
    int found = 0;
    for (int rep = 0; rep < 1000; rep++)
        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
            found += match(r, HP_ROUTER_GET, paths[i], &m) == 200;
    hp_alloc_fail_after(0, 0);
    assert_int_equal(hp_alloc_count(), a0);
    assert_int_equal(found, 7000); /* all but /nope and /users/x */
    hp_router_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_empty_and_new_oom, teardown),
        cmocka_unit_test_teardown(test_static_routes, teardown),
        cmocka_unit_test_teardown(test_precedence_all_subsets, teardown),
        cmocka_unit_test_teardown(test_backtracking, teardown),
        cmocka_unit_test_teardown(test_int_bounds, teardown),
        cmocka_unit_test_teardown(test_uuid_and_slug_bounds, teardown),
        cmocka_unit_test_teardown(test_catch_all, teardown),
        cmocka_unit_test_teardown(test_trailing_slash, teardown),
        cmocka_unit_test_teardown(test_methods_405_head, teardown),
        cmocka_unit_test_teardown(test_allow_str, teardown),
        cmocka_unit_test_teardown(test_conflicts, teardown),
        cmocka_unit_test_teardown(test_malformed, teardown),
        cmocka_unit_test_teardown(test_many_children_and_params, teardown),
        cmocka_unit_test_teardown(test_property_random_routes, teardown),
        cmocka_unit_test_teardown(test_oom_add, teardown),
        cmocka_unit_test_teardown(test_add_alloc_counts, teardown),
        cmocka_unit_test_teardown(test_add_conflict_messages, teardown),
        cmocka_unit_test_teardown(test_match_allocates_nothing, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
