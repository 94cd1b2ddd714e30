/*
 * test_rcache.c - unit tests for the per-worker response cache
 * (src/http/rcache.c).
 *
 * Covered: argument checks; a hit returns the stored bytes and allocates
 * nothing; misses; the TTL boundary (fresh while now < expires_ms), the
 * default TTL and its cap; replacement; LRU order under the entry bound and
 * under the byte bound; -E2BIG; referenced entries that are evicted,
 * replaced, expired, cleared or outlive their cache; table growth; a
 * randomised run against a simple model; the key builder; the Cache-Control
 * max-age parser; out-of-memory sweeps. hp_rcache_validate runs after every
 * mutation. Leaks: every test frees its cache and checks `detached` is 0;
 * LeakSanitizer (ASan build) or an exact mallinfo2 figure (test_no_leak,
 * plain build) proves the memory really went back.
 */
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hotpath/alloc.h"
#include "http/rcache_int.h"

#define TUNABLES "glibc.malloc.tcache_count=0"

static void check(const hp_rcache_t *rc)
{
    assert_int_equal(hp_rcache_validate(rc), 0);
}

static hp_rcache_stats_t stats(const hp_rcache_t *rc)
{
    hp_rcache_stats_t s;
    hp_rcache_stats(rc, &s);
    return s;
}

static hp_rcache_t *mk(uint32_t entries, uint64_t bytes, uint64_t ttl)
{
    hp_rcache_t *rc = NULL;
    assert_int_equal(hp_rcache_new(&rc, entries, bytes, ttl), 0);
    assert_non_null(rc);
    check(rc);
    return rc;
}

static void done(hp_rcache_t *rc)
{
    check(rc);
    assert_int_equal(stats(rc).detached, 0);
    hp_rcache_free(rc);
}

/* Puts key s with body b (strings), default TTL, and validates. */
static int put_s(hp_rcache_t *rc, const char *k, const char *b, uint64_t ttl, uint64_t now)
{
    int r = hp_rcache_put(rc, k, strlen(k), 200, "text/plain", "X-A: 1\r\n", 8, b, strlen(b),
                          ttl, now);
    check(rc);
    return r;
}

/* True when k is present and fresh at `now`; the lookup refreshes it. */
static bool has(hp_rcache_t *rc, const char *k, uint64_t now)
{
    hp_rcache_entry_t *e = hp_rcache_get(rc, k, strlen(k), now);
    check(rc);
    hp_rcache_release(e);
    check(rc);
    return e != NULL;
}

static uint64_t size_of(const char *k, const char *b)
{
    return hp_rcache_entry_size(strlen(k), strlen("text/plain"), 8, strlen(b));
}

static void test_new_args(void **state)
{
    (void)state;
    hp_rcache_t *rc = (hp_rcache_t *)&rc;
    assert_int_equal(hp_rcache_new(&rc, 0, 100, 1000), -EINVAL);
    assert_null(rc);
    assert_int_equal(hp_rcache_new(&rc, 10, 100, 0), -EINVAL);
    assert_int_equal(hp_rcache_new(NULL, 10, 100, 10), -EINVAL);
    rc = mk(HP_RCACHE_DEFAULT_ENTRIES, 0, HP_RCACHE_DEFAULT_TTL_MS);
    hp_rcache_stats_t s = stats(rc);
    assert_int_equal(s.entries + s.bytes + s.hits + s.misses + s.inserts + s.evictions, 0);
    done(rc);
    rc = mk(1, 1, 1); /* smallest: one bucket; nothing fits in 1 byte */
    assert_int_equal(put_s(rc, "k", "", 0, 0), -E2BIG);
    done(rc);
    hp_rcache_free(NULL);
    hp_rcache_release(NULL);
}

static void test_hit_identical(void **state)
{
    (void)state;
    hp_rcache_t *rc = mk(16, 0, 60000);
    char key[] = "GET\0/index.html\0?q=1";
    unsigned char body[300];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (unsigned char)(i * 7); /* includes NUL bytes */
    const char hdr[] = "ETag: \"x\"\r\nVary: Accept-Encoding\r\n";
    assert_int_equal(hp_rcache_put(rc, key, sizeof key, 200, "text/html", hdr, sizeof hdr - 1,
                                   body, sizeof body, 0, 1000),
                     0);
    check(rc);
    /* The cache keeps copies: scribbling on the inputs changes nothing. */
    unsigned char want[sizeof body];
    memcpy(want, body, sizeof body);
    memset(body, 0xee, sizeof body);

    uint64_t a0 = hp_alloc_count();
    hp_rcache_entry_t *e = hp_rcache_get(rc, key, sizeof key, 2000);
    assert_int_equal(hp_alloc_count(), a0); /* no allocation on a hit */
    assert_non_null(e);
    check(rc);
    assert_int_equal(e->status, 200);
    assert_string_equal(e->ctype, "text/html");
    assert_int_equal(e->headers_len, sizeof hdr - 1);
    assert_memory_equal(e->headers, hdr, sizeof hdr); /* with its NUL */
    assert_int_equal(e->body_len, sizeof body);
    assert_memory_equal(e->body, want, sizeof want);
    assert_true(e->body != (const void *)body);
    assert_int_equal(e->expires_ms, 1000 + 60000);
    hp_rcache_stats_t s = stats(rc);
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.misses, 0);
    assert_int_equal(s.inserts, 1);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.bytes, hp_rcache_entry_size(sizeof key, 9, sizeof hdr - 1, sizeof body));
    assert_true(s.bytes > sizeof body + sizeof key); /* per-entry overhead charged */
    /* Two lookups of the same entry return the same object. */
    hp_rcache_entry_t *e2 = hp_rcache_get(rc, key, sizeof key, 2000);
    assert_ptr_equal(e, e2);
    hp_rcache_release(e2);
    hp_rcache_release(e);
    check(rc);

    /* NULL ctype and headers, empty body. */
    assert_int_equal(hp_rcache_put(rc, "e", 1, 200, NULL, NULL, 0, NULL, 0, 0, 0), 0);
    check(rc);
    e = hp_rcache_get(rc, "e", 1, 0);
    assert_non_null(e);
    assert_string_equal(e->ctype, "");
    assert_string_equal(e->headers, "");
    assert_int_equal(e->headers_len, 0);
    assert_int_equal(e->body_len, 0);
    hp_rcache_release_cb(e);
    /* An empty key is a key like any other. */
    assert_int_equal(hp_rcache_put(rc, "", 0, 200, "a/b", NULL, 0, "z", 1, 0, 0), 0);
    check(rc);
    e = hp_rcache_get(rc, "", 0, 0);
    assert_non_null(e);
    assert_memory_equal(e->body, "z", 1);
    hp_rcache_release(e);
    done(rc);
}

static void test_miss(void **state)
{
    (void)state;
    hp_rcache_t *rc = mk(16, 0, 60000);
    assert_false(has(rc, "nothing", 0));
    assert_int_equal(put_s(rc, "abcdefghijklmnopqrstuvwxyz", "body", 0, 0), 0);
    /* Prefixes, extensions and one changed byte are different keys. */
    assert_false(has(rc, "abcdefghijklmnopqrstuvwxy", 0));
    assert_false(has(rc, "abcdefghijklmnopqrstuvwxyz0", 0));
    assert_false(has(rc, "abcdefghijklmnopqrstuvwxyZ", 0));
    assert_false(has(rc, "Abcdefghijklmnopqrstuvwxyz", 0));
    assert_true(has(rc, "abcdefghijklmnopqrstuvwxyz", 0));
    hp_rcache_stats_t s = stats(rc);
    assert_int_equal(s.misses, 5);
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.expired, 0);
    assert_int_equal(hp_rcache_remove(rc, "abcdefghijklmnopqrstuvwxyz", 26), 0);
    check(rc);
    assert_int_equal(hp_rcache_remove(rc, "abcdefghijklmnopqrstuvwxyz", 26), -ENOENT);
    assert_false(has(rc, "abcdefghijklmnopqrstuvwxyz", 0));
    assert_int_equal(stats(rc).entries, 0);
    assert_int_equal(stats(rc).bytes, 0);
    assert_int_equal(stats(rc).evictions, 0);
    done(rc);
}

/* Fresh while now < expires_ms; at expires_ms it is a miss, dropped and
 * counted as expired. */
static void test_ttl_boundary(void **state)
{
    (void)state;
    hp_rcache_t *rc = mk(16, 0, 300000);
    assert_int_equal(put_s(rc, "k", "v", 100, 1000), 0);
    assert_true(has(rc, "k", 1000));
    assert_true(has(rc, "k", 1099));
    hp_rcache_stats_t s = stats(rc);
    assert_int_equal(s.hits, 2);
    assert_false(has(rc, "k", 1100));
    s = stats(rc);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.expired, 1);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.bytes, 0);
    assert_int_equal(s.evictions, 0);
    /* Gone for good, even if the clock were to go back. */
    assert_false(has(rc, "k", 1000));
    assert_int_equal(stats(rc).expired, 1);
    assert_int_equal(stats(rc).misses, 2);
    done(rc);
}

static void test_default_ttl_and_cap(void **state)
{
    (void)state;
    hp_rcache_t *rc = mk(16, 0, 500);
    assert_int_equal(put_s(rc, "zero", "v", 0, 1000), 0);     /* default */
    assert_int_equal(put_s(rc, "short", "v", 100, 1000), 0);  /* as given */
    assert_int_equal(put_s(rc, "long", "v", 10000, 1000), 0); /* capped */
    assert_int_equal(put_s(rc, "edge", "v", 500, 1000), 0);
    const struct {
        const char *k;
        uint64_t exp;
    } t[] = {{"zero", 1500}, {"short", 1100}, {"long", 1500}, {"edge", 1500}};
    for (size_t i = 0; i < 4; i++) {
        hp_rcache_entry_t *e = hp_rcache_get(rc, t[i].k, strlen(t[i].k), 1000);
        assert_non_null(e);
        assert_int_equal(e->expires_ms, t[i].exp);
        hp_rcache_release(e);
    }
    assert_true(has(rc, "long", 1499));
    assert_false(has(rc, "long", 1500));
    /* A clock near the end of time saturates instead of wrapping. */
    assert_int_equal(put_s(rc, "end", "v", 0, UINT64_MAX - 10), 0);
    hp_rcache_entry_t *e = hp_rcache_get(rc, "end", 3, UINT64_MAX - 1);
    assert_non_null(e);
    assert_int_equal(e->expires_ms, UINT64_MAX);
    hp_rcache_release(e);
    done(rc);
}

static void test_replace(void **state)
{
    (void)state;
    hp_rcache_t *rc = mk(4, 0, 60000);
    assert_int_equal(put_s(rc, "k", "old body", 0, 0), 0);
    hp_rcache_entry_t *old = hp_rcache_get(rc, "k", 1, 0);
    assert_non_null(old);
    assert_int_equal(put_s(rc, "k", "new", 0, 10), 0);
    hp_rcache_stats_t s = stats(rc);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.inserts, 2);
    assert_int_equal(s.evictions, 0);
    assert_int_equal(s.detached, 1);
    assert_int_equal(s.bytes, size_of("k", "new"));
    hp_rcache_entry_t *e = hp_rcache_get(rc, "k", 1, 20);
    assert_non_null(e);
    assert_true(e != old);
    assert_int_equal(e->body_len, 3);
    assert_memory_equal(e->body, "new", 3);
    assert_int_equal(e->expires_ms, 10 + 60000);
    /* The replaced entry is still intact for whoever holds it. */
    assert_int_equal(old->body_len, 8);
    assert_memory_equal(old->body, "old body", 8);
    assert_string_equal(old->ctype, "text/plain");
    hp_rcache_release(old);
    check(rc);
    assert_int_equal(stats(rc).detached, 0);
    hp_rcache_release(e);
    /* Replacing an unreferenced entry frees it at once. */
    assert_int_equal(put_s(rc, "k", "newer", 0, 30), 0);
    assert_int_equal(stats(rc).detached, 0);
    assert_int_equal(stats(rc).entries, 1);
    done(rc);
}

static void test_lru_entries(void **state)
{
    (void)state;
    hp_rcache_t *rc = mk(3, 0, 60000);
    assert_int_equal(put_s(rc, "a", "1", 0, 0), 0);
    assert_int_equal(put_s(rc, "b", "2", 0, 0), 0);
    assert_int_equal(put_s(rc, "c", "3", 0, 0), 0);
    assert_int_equal(stats(rc).evictions, 0);
    assert_true(has(rc, "a", 0)); /* order now a c b (most recent first) */
    assert_int_equal(put_s(rc, "d", "4", 0, 0), 0); /* evicts b */
    hp_rcache_stats_t s = stats(rc);
    assert_int_equal(s.evictions, 1);
    assert_int_equal(s.entries, 3);
    assert_false(has(rc, "b", 0));
    /* Order d a c: replacing c refreshes it, then e evicts a. */
    assert_int_equal(put_s(rc, "c", "33", 0, 0), 0);
    assert_int_equal(stats(rc).evictions, 1); /* replacement is no eviction */
    assert_int_equal(put_s(rc, "e", "5", 0, 0), 0);
    assert_int_equal(stats(rc).evictions, 2);
    assert_false(has(rc, "a", 0));
    assert_true(has(rc, "c", 0));
    assert_true(has(rc, "d", 0));
    assert_true(has(rc, "e", 0));
    /* A failed get does not change the order: e d c -> f evicts c. */
    assert_false(has(rc, "zz", 0));
    assert_int_equal(put_s(rc, "f", "6", 0, 0), 0);
    assert_false(has(rc, "c", 0));
    assert_int_equal(stats(rc).entries, 3);

    /* max_entries 1: each put pushes the previous one out. */
    hp_rcache_t *one = mk(1, 0, 1000);
    assert_int_equal(put_s(one, "x", "1", 0, 0), 0);
    assert_int_equal(put_s(one, "y", "2", 0, 0), 0);
    assert_false(has(one, "x", 0));
    assert_true(has(one, "y", 0));
    assert_int_equal(stats(one).evictions, 1);
    done(one);
    done(rc);
}

static void test_lru_bytes(void **state)
{
    (void)state;
    char b100[101];
    memset(b100, 'x', 100);
    b100[100] = '\0';
    uint64_t sz = size_of("a", b100);
    hp_rcache_t *rc = mk(100, 3 * sz, 60000);
    assert_int_equal(put_s(rc, "a", b100, 0, 0), 0);
    assert_int_equal(put_s(rc, "b", b100, 0, 0), 0);
    assert_int_equal(put_s(rc, "c", b100, 0, 0), 0);
    assert_int_equal(stats(rc).bytes, 3 * sz);
    assert_int_equal(stats(rc).evictions, 0);
    assert_true(has(rc, "a", 0)); /* a c b */
    assert_int_equal(put_s(rc, "d", b100, 0, 0), 0); /* b goes */
    assert_int_equal(stats(rc).evictions, 1);
    assert_false(has(rc, "b", 0));
    assert_int_equal(stats(rc).bytes, 3 * sz);
    /* d a c: a small entry fits only after c leaves. */
    assert_int_equal(put_s(rc, "s", "", 0, 0), 0);
    assert_int_equal(stats(rc).evictions, 2);
    assert_false(has(rc, "c", 0));
    assert_true(stats(rc).bytes <= 3 * sz);
    /* One that needs more room pushes out two, least recent first
     * (order d s a after the lookup: a, then s go; d stays). */
    char b250[251];
    memset(b250, 'y', 250);
    b250[250] = '\0';
    assert_true(size_of("w", b250) + sz <= 3 * sz);
    assert_true(has(rc, "d", 0));
    assert_int_equal(put_s(rc, "w", b250, 0, 0), 0);
    assert_int_equal(stats(rc).evictions, 4);
    assert_false(has(rc, "a", 0));
    assert_false(has(rc, "s", 0));
    assert_true(has(rc, "d", 0));
    assert_true(has(rc, "w", 0));

    /* Larger than the whole budget: refused, nothing disturbed. */
    char *big = malloc(3 * sz + 1);
    assert_non_null(big);
    memset(big, 'z', 3 * sz);
    big[3 * sz] = '\0';
    hp_rcache_stats_t before = stats(rc);
    assert_true(size_of("q", big) > 3 * sz);
    assert_int_equal(put_s(rc, "q", big, 0, 0), -E2BIG);
    assert_int_equal(put_s(rc, "w", big, 0, 0), -E2BIG); /* the old w stays */
    hp_rcache_stats_t after = stats(rc);
    assert_int_equal(after.entries, before.entries);
    assert_int_equal(after.bytes, before.bytes);
    assert_int_equal(after.evictions, before.evictions);
    assert_int_equal(after.inserts, before.inserts);
    assert_true(has(rc, "w", 0));
    free(big);
    done(rc);

    /* An entry of exactly max_bytes is accepted and evicts everything. */
    rc = mk(100, sz, 60000);
    assert_int_equal(put_s(rc, "b", "", 0, 0), 0);
    assert_int_equal(put_s(rc, "c", "", 0, 0), 0);
    assert_int_equal(put_s(rc, "a", b100, 0, 0), 0);
    assert_int_equal(stats(rc).entries, 1);
    assert_int_equal(stats(rc).bytes, sz);
    assert_int_equal(stats(rc).evictions, 2);
    /* One byte over is refused. */
    char b101[102];
    memset(b101, 'x', 101);
    b101[101] = '\0';
    assert_int_equal(put_s(rc, "a", b101, 0, 0), -E2BIG);
    assert_true(has(rc, "a", 0));
    done(rc);

    /* Sizes that overflow are refused, not wrapped. */
    rc = mk(4, 0, 1000);
    assert_int_equal(hp_rcache_entry_size(1, 1, 1, UINT64_MAX - 2), UINT64_MAX);
    assert_int_equal(hp_rcache_put(rc, "k", 1, 200, "", NULL, 0, "x", UINT64_MAX - 8, 0, 0),
                     -E2BIG);
    assert_int_equal(hp_rcache_put(rc, "k", (size_t)UINT32_MAX + 1, 200, "", NULL, 0, "x", 1, 0, 0),
                     -E2BIG);
    assert_int_equal(hp_rcache_put(rc, "k", 1, 200, "", "h", (size_t)UINT32_MAX, "x", 1, 0, 0),
                     -E2BIG);
    done(rc);
}

/* Evicted while queued for sending: stays readable, freed on the last
 * release. */
static void test_referenced_eviction(void **state)
{
    (void)state;
    hp_rcache_t *rc = mk(1, 0, 60000);
    assert_int_equal(put_s(rc, "a", "alpha body", 0, 0), 0);
    hp_rcache_entry_t *a = hp_rcache_get(rc, "a", 1, 0);
    assert_non_null(a);
    hp_rcache_ref(a); /* a second queued response */
    assert_int_equal(put_s(rc, "b", "beta", 0, 0), 0);
    hp_rcache_stats_t s = stats(rc);
    assert_int_equal(s.evictions, 1);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.detached, 1);
    assert_int_equal(s.bytes, size_of("b", "beta"));
    assert_false(has(rc, "a", 0));
    assert_memory_equal(a->body, "alpha body", 10);
    assert_string_equal(a->ctype, "text/plain");
    assert_string_equal(a->headers, "X-A: 1\r\n");
    hp_rcache_release(a);
    check(rc);
    assert_int_equal(stats(rc).detached, 1);
    assert_memory_equal(a->body, "alpha body", 10);
    hp_rcache_release(a); /* freed here (ASan would flag a later read) */
    check(rc);
    assert_int_equal(stats(rc).detached, 0);

    /* Expiry of a referenced entry: same story. */
    hp_rcache_entry_t *b = hp_rcache_get(rc, "b", 1, 0);
    assert_non_null(b);
    assert_false(has(rc, "b", 60000));
    assert_int_equal(stats(rc).detached, 1);
    assert_int_equal(stats(rc).expired, 1);
    assert_memory_equal(b->body, "beta", 4);
    hp_rcache_release(b);
    check(rc);

    /* Removal too. */
    assert_int_equal(put_s(rc, "c", "gamma", 0, 0), 0);
    hp_rcache_entry_t *c = hp_rcache_get(rc, "c", 1, 0);
    assert_int_equal(hp_rcache_remove(rc, "c", 1), 0);
    check(rc);
    assert_int_equal(stats(rc).detached, 1);
    assert_memory_equal(c->body, "gamma", 5);
    hp_rcache_release(c);
    done(rc);
}

static void test_clear_and_free_with_refs(void **state)
{
    (void)state;
    hp_rcache_t *rc = mk(8, 0, 60000);
    assert_int_equal(put_s(rc, "a", "A", 0, 0), 0);
    assert_int_equal(put_s(rc, "b", "B", 0, 0), 0);
    assert_int_equal(put_s(rc, "c", "C", 0, 0), 0);
    hp_rcache_entry_t *b = hp_rcache_get(rc, "b", 1, 0);
    assert_non_null(b);
    hp_rcache_stats_t s0 = stats(rc);
    hp_rcache_clear(rc);
    check(rc);
    hp_rcache_stats_t s = stats(rc);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.bytes, 0);
    assert_int_equal(s.detached, 1);
    assert_int_equal(s.evictions, 0);
    assert_int_equal(s.hits, s0.hits); /* counters survive a clear */
    assert_int_equal(s.inserts, s0.inserts);
    assert_false(has(rc, "a", 0));
    assert_false(has(rc, "b", 0));
    assert_memory_equal(b->body, "B", 1);
    /* The cache goes on working after a clear. */
    assert_int_equal(put_s(rc, "b", "B2", 0, 0), 0);
    assert_true(has(rc, "b", 0));
    hp_rcache_release(b);
    check(rc);
    assert_int_equal(stats(rc).detached, 0);
    hp_rcache_clear(rc);
    hp_rcache_clear(rc); /* idempotent */
    check(rc);

    /* Entries may outlive their cache: one in the table and one already
     * detached when the cache is freed. */
    assert_int_equal(put_s(rc, "x", "X", 0, 0), 0);
    assert_int_equal(put_s(rc, "y", "Y", 0, 0), 0);
    hp_rcache_entry_t *x = hp_rcache_get(rc, "x", 1, 0);
    hp_rcache_entry_t *y = hp_rcache_get(rc, "y", 1, 0);
    assert_int_equal(hp_rcache_remove(rc, "y", 1), 0);
    check(rc);
    hp_rcache_free(rc);
    assert_memory_equal(x->body, "X", 1);
    assert_memory_equal(y->body, "Y", 1);
    hp_rcache_ref(x);
    hp_rcache_release(x);
    hp_rcache_release(y);
    hp_rcache_release(x); /* last: freed; LeakSanitizer checks */
}

/* The table starts small and grows; every entry stays reachable and the
 * bound still holds at max_entries. */
static void test_growth(void **state)
{
    (void)state;
    enum { N = 1000 };
    hp_rcache_t *rc = mk(N, 0, 60000);
    char k[32];
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof k, "/item/%d", i);
        assert_int_equal(hp_rcache_put(rc, k, strlen(k), 200, "t", NULL, 0, k, strlen(k), 0, 0),
                         0);
        if (i % 37 == 0 || i > N - 3)
            check(rc);
    }
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof k, "/item/%d", i);
        hp_rcache_entry_t *e = hp_rcache_get(rc, k, strlen(k), 1);
        assert_non_null(e);
        assert_int_equal(e->body_len, strlen(k));
        assert_memory_equal(e->body, k, strlen(k));
        hp_rcache_release(e);
    }
    check(rc);
    assert_int_equal(stats(rc).evictions, 0);
    /* All were just read in order 0..N-1, so 0 is the least recent. */
    assert_int_equal(put_s(rc, "new", "v", 0, 1), 0);
    assert_int_equal(stats(rc).evictions, 1);
    assert_false(has(rc, "/item/0", 1));
    assert_true(has(rc, "/item/1", 1));
    assert_int_equal(stats(rc).entries, N);
    done(rc);
}

/* Random operations against a model: a list of (key, expiry, last use)
 * that evicts the least recently used by a tick counter. */
static void test_random_model(void **state)
{
    (void)state;
    enum { KEYS = 24, MAXE = 7, OPS = 20000 };
    struct {
        bool in;
        uint64_t exp, used, size;
        size_t blen;
        hp_rcache_entry_t *held;
    } m[KEYS];
    memset(m, 0, sizeof m);
    const uint64_t max_bytes = 6 * hp_rcache_entry_size(4, 1, 0, 40);
    hp_rcache_t *rc = mk(MAXE, max_bytes, 50);
    unsigned seed = 12345;
    uint64_t now = 0, tick = 0, evictions = 0, expired = 0;
    char body[64];
    for (int op = 0; op < OPS; op++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 8;
        int ki = (int)(r % KEYS);
        char k[4] = {'k', (char)('a' + ki), (char)('0' + ki % 3), 0};
        now += (r >> 20) % 3;
        switch ((r >> 5) % 5) {
        case 0:
        case 1: { /* put */
            size_t blen = (r >> 9) % 64;
            memset(body, 'a' + ki, blen);
            uint64_t ttl = (r >> 15) % 80; /* 0 and > 50 both mean 50 */
            assert_int_equal(hp_rcache_put(rc, k, 4, 200, "t", NULL, 0, body, blen, ttl, now), 0);
            m[ki].in = true;
            m[ki].exp = now + (ttl == 0 || ttl > 50 ? 50 : ttl);
            m[ki].used = ++tick;
            m[ki].blen = blen;
            m[ki].size = hp_rcache_entry_size(4, 1, 0, blen);
            /* Model eviction: least recently used first. */
            for (;;) {
                uint64_t n = 0, b = 0;
                int lru = -1;
                for (int j = 0; j < KEYS; j++) {
                    if (!m[j].in)
                        continue;
                    n++;
                    b += m[j].size;
                    if (lru < 0 || m[j].used < m[lru].used)
                        lru = j;
                }
                if (n <= MAXE && b <= max_bytes)
                    break;
                m[lru].in = false;
                evictions++;
            }
            break;
        }
        case 2:
        case 3: { /* get */
            hp_rcache_entry_t *e = hp_rcache_get(rc, k, 4, now);
            bool fresh = m[ki].in && now < m[ki].exp;
            if (m[ki].in && !fresh) {
                m[ki].in = false;
                expired++;
            }
            assert_int_equal(e != NULL, fresh);
            if (e) {
                m[ki].used = ++tick;
                assert_int_equal(e->body_len, m[ki].blen);
                assert_int_equal(e->expires_ms, m[ki].exp);
                for (size_t i = 0; i < e->body_len; i++)
                    assert_int_equal(((const char *)e->body)[i], 'a' + ki);
                /* Sometimes keep it referenced for a while. */
                if (!m[ki].held && (r & 1))
                    m[ki].held = e;
                else
                    hp_rcache_release(e);
            }
            break;
        }
        default: /* release a held reference, or remove */
            if (m[ki].held) {
                hp_rcache_release(m[ki].held);
                m[ki].held = NULL;
            } else {
                int rr = hp_rcache_remove(rc, k, 4);
                assert_int_equal(rr, m[ki].in ? 0 : -ENOENT);
                m[ki].in = false;
            }
        }
        check(rc);
        hp_rcache_stats_t s = stats(rc);
        uint64_t n = 0, b = 0;
        for (int j = 0; j < KEYS; j++)
            if (m[j].in) {
                n++;
                b += m[j].size;
            }
        assert_int_equal(s.entries, n);
        assert_int_equal(s.bytes, b);
        assert_int_equal(s.evictions, evictions);
        assert_int_equal(s.expired, expired);
    }
    for (int j = 0; j < KEYS; j++)
        hp_rcache_release(m[j].held);
    done(rc);
}

static ssize_t key(char *buf, size_t cap, const char *m, const char *p, const char *q)
{
    return hp_rcache_key(buf, cap, m, strlen(m), p, strlen(p), q, strlen(q), NULL, NULL, 0);
}

static void test_key_builder(void **state)
{
    (void)state;
    char k1[128], k2[128];
    ssize_t n1 = key(k1, sizeof k1, "GET", "a", "b");
    ssize_t n2 = key(k2, sizeof k2, "GET", "ab", "");
    assert_int_equal(n1, 12 + 5);
    assert_int_equal(n2, 12 + 5);
    assert_memory_not_equal(k1, k2, (size_t)n1);
    n2 = key(k2, sizeof k2, "GETa", "", "b");
    assert_memory_not_equal(k1, k2, (size_t)n1);
    n2 = key(k2, sizeof k2, "GET", "a", "b");
    assert_int_equal(n1, n2);
    assert_memory_equal(k1, k2, (size_t)n1);
    n2 = key(k2, sizeof k2, "HEAD", "a", "b");
    assert_true(n1 != n2 || memcmp(k1, k2, (size_t)n1) != 0);
    /* Bytes that look like a length prefix cannot forge a split. */
    char fake[] = {'a', 1, 0, 0, 0, 'b'};
    n2 = hp_rcache_key(k2, sizeof k2, "GET", 3, fake, sizeof fake, "", 0, NULL, NULL, 0);
    assert_true(n1 != n2 || memcmp(k1, k2, (size_t)n1) != 0);
    /* Layout: 4-byte little-endian length, then bytes. */
    assert_memory_equal(k1, "\x03\0\0\0GET\x01\0\0\0a\x01\0\0\0b", 17);

    /* Varied header values: absent, empty and present all differ, and so
     * do the same bytes split across two values. */
    const char *v_abs[] = {NULL};
    const char *v_empty[] = {""};
    const char *v_gz[] = {"gzip"};
    size_t l0[] = {0}, l4[] = {4};
    char k3[128];
    ssize_t na = hp_rcache_key(k1, sizeof k1, "GET", 3, "/", 1, "", 0, v_abs, l0, 1);
    ssize_t ne = hp_rcache_key(k2, sizeof k2, "GET", 3, "/", 1, "", 0, v_empty, l0, 1);
    ssize_t ng = hp_rcache_key(k3, sizeof k3, "GET", 3, "/", 1, "", 0, v_gz, l4, 1);
    assert_int_equal(na, 20);
    assert_int_equal(ne, 20);
    assert_int_equal(ng, 24);
    assert_memory_not_equal(k1, k2, 20);
    assert_memory_equal(k1 + 16, "\xff\xff\xff\xff", 4);
    assert_memory_equal(k3 + 16, "\x04\0\0\0gzip", 8);
    const char *v2a[] = {"gz", "ip"}, *v2b[] = {"gzi", "p"};
    size_t l2a[] = {2, 2}, l2b[] = {3, 1};
    na = hp_rcache_key(k1, sizeof k1, "GET", 3, "/", 1, "", 0, v2a, l2a, 2);
    ne = hp_rcache_key(k2, sizeof k2, "GET", 3, "/", 1, "", 0, v2b, l2b, 2);
    assert_int_equal(na, ne);
    assert_memory_not_equal(k1, k2, (size_t)na);
    /* One value vs no values with no query. */
    na = hp_rcache_key(k1, sizeof k1, "GET", 3, "/", 1, NULL, 0, v_empty, l0, 1);
    ne = hp_rcache_key(k2, sizeof k2, "GET", 3, "/", 1, NULL, 0, NULL, NULL, 0);
    assert_true(na != ne);

    /* -ENOSPC for every buffer one byte too small or smaller; exact fits.
     * Heap buffers of exact size let ASan catch any write past cap. */
    for (size_t cap = 0; cap <= 24; cap++) {
        char *b = malloc(cap ? cap : 1);
        assert_non_null(b);
        ssize_t r = hp_rcache_key(b, cap, "GET", 3, "/", 1, "", 0, v_gz, l4, 1);
        assert_int_equal(r, cap < 24 ? -ENOSPC : 24);
        if (r > 0)
            assert_memory_equal(b, k3, 24);
        free(b);
    }
    /* A part of 4 GiB - 1 or more cannot be length-prefixed; refused
     * before anything is read. */
    assert_int_equal(hp_rcache_key(k1, sizeof k1, "GET", 3, "/", UINT32_MAX, "", 0, NULL, NULL, 0),
                     -E2BIG);
    size_t lbig[] = {(size_t)UINT32_MAX + 5};
    assert_int_equal(hp_rcache_key(k1, sizeof k1, "GET", 3, "/", 1, "", 0, v_gz, lbig, 1), -E2BIG);

    /* Keys built here work as cache keys. */
    hp_rcache_t *rc = mk(4, 0, 1000);
    n1 = key(k1, sizeof k1, "GET", "a", "b");
    n2 = key(k2, sizeof k2, "GET", "ab", "");
    assert_int_equal(hp_rcache_put(rc, k1, (size_t)n1, 200, "t", NULL, 0, "1", 1, 0, 0), 0);
    check(rc);
    assert_null(hp_rcache_get(rc, k2, (size_t)n2, 0));
    hp_rcache_entry_t *e = hp_rcache_get(rc, k1, (size_t)n1, 0);
    assert_non_null(e);
    hp_rcache_release(e);
    done(rc);
}

/* Parses through an exact-size heap copy so ASan flags reads past len. */
static int64_t age(const char *v)
{
    size_t n = strlen(v);
    char *c = malloc(n ? n : 1);
    assert_non_null(c);
    memcpy(c, v, n);
    int64_t r = hp_rcache_max_age_ms(c, n);
    free(c);
    return r;
}

static void test_max_age(void **state)
{
    (void)state;
    const struct {
        const char *v;
        int64_t want;
    } t[] = {
        {"max-age=60", 60000},
        {"MAX-AGE=60", 60000},
        {"Max-Age=1", 1000},
        {"public, max-age=10", 10000},
        {"public,max-age=10", 10000},
        {"  max-age=10  ", 10000},
        {"\tmax-age=10\t,\tpublic", 10000},
        {",, max-age=7 ,,", 7000},
        {"max-age=\"5\"", 5000},
        {"must-revalidate, max-age=0010", 10000},
        {"s-maxage=99, max-age=3", 3000},
        {"s-maxage=99", 0},
        {"public", 0},
        {"", 0},
        {"   ", 0},
        {",,,", 0},
        {"max-ages=5", 0},
        {"xmax-age=5", 0},
        {"ext=\"a, max-age=5\", max-age=9", 9000},    /* comma inside quotes */
        {"ext=\"a\\\"b, max-age=5\", max-age=9", 9000}, /* escaped quote */
        {"foo bar, max-age=4", 4000},                  /* junk element skipped */
        {"=, max-age=4", 4000},
        {"@@@, max-age=4", 4000},
        /* Must not be cached. */
        {"no-store", -1},
        {"NO-STORE", -1},
        {"private", -1},
        {"no-cache", -1},
        {"max-age=60, no-store", -1},
        {"no-cache=\"Set-Cookie\", max-age=60", -1},
        {"private=\"X\"", -1},
        {"public, max-age=60, private", -1},
        {"max-age=0", -1},
        {"max-age=000", -1},
        /* Invalid max-age: treated as stale (RFC 9111 §4.2.1). */
        {"max-age = 60", -1},
        {"max-age =60", -1},
        {"max-age= 60", -1},
        {"max-age", -1},
        {"max-age=", -1},
        {"max-age=\"\"", -1},
        {"max-age=abc", -1},
        {"max-age=-5", -1},
        {"max-age=+5", -1},
        {"max-age=5s", -1},
        {"max-age=1.5", -1},
        {"max-age=\"5 \"", -1},
        {"max-age=5, max-age=5", -1},
        {"max-age=5, max-age=6", -1},
        {"max-age=\"5", -1}, /* unterminated */
        {"ext=\"abc, max-age=5", -1},
        /* Clamped to 2^31 seconds. */
        {"max-age=2147483647", 2147483647000ll},
        {"max-age=2147483648", 2147483648000ll},
        {"max-age=2147483649", 2147483648000ll},
        {"max-age=99999999999999999999999999999999", 2147483648000ll},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int64_t got = age(t[i].v);
        if (got != t[i].want)
            fail_msg("\"%s\": got %lld, want %lld", t[i].v, (long long)got, (long long)t[i].want);
    }
    assert_int_equal(hp_rcache_max_age_ms(NULL, 0), 0);
    /* Length is honoured: bytes after len are not read. */
    assert_int_equal(hp_rcache_max_age_ms("max-age=12, no-store", 10), 12000);
    assert_int_equal(hp_rcache_max_age_ms("max-age=12", 9), 1000);
}

static void test_oom_new(void **state)
{
    (void)state;
    for (uint64_t n = 1;; n++) {
        hp_rcache_t *rc = (hp_rcache_t *)&n;
        hp_alloc_fail_after(n, 0);
        int r = hp_rcache_new(&rc, 1000, 1 << 20, 1000);
        hp_alloc_fail_after(0, 0);
        if (r == 0) {
            assert_true(n > 2); /* the cache and its buckets */
            check(rc);
            done(rc);
            break;
        }
        assert_int_equal(r, -ENOMEM);
        assert_null(rc);
    }
}

static void test_oom_put(void **state)
{
    (void)state;
    hp_rcache_t *rc = mk(64, 0, 1000);
    char k[16];
    /* 16 entries fill the initial buckets: the 17th put also grows. */
    for (int i = 0; i < 16; i++) {
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal(put_s(rc, k, "v", 0, 0), 0);
    }
    assert_int_equal(put_s(rc, "k3", "old", 0, 0), 0);
    hp_rcache_stats_t s0 = stats(rc);

    /* The entry's allocation fails: -ENOMEM, nothing changed, the old
     * entry under the key still served. */
    hp_alloc_fail_after(1, 0);
    assert_int_equal(put_s(rc, "k3", "new", 0, 0), -ENOMEM);
    hp_alloc_fail_after(0, 0);
    hp_rcache_stats_t s1 = stats(rc);
    assert_int_equal(s1.entries, s0.entries);
    assert_int_equal(s1.bytes, s0.bytes);
    assert_int_equal(s1.inserts, s0.inserts);
    hp_rcache_entry_t *e = hp_rcache_get(rc, "k3", 2, 0);
    assert_non_null(e);
    assert_memory_equal(e->body, "old", 3);
    hp_rcache_release(e);

    /* Growth fails: the put still succeeds, chains are just longer, and a
     * later put grows the table. */
    hp_alloc_fail_after(2, 0);
    assert_int_equal(put_s(rc, "k16", "v", 0, 0), 0);
    hp_alloc_fail_after(0, 0);
    uint64_t a0 = hp_alloc_count();
    assert_int_equal(put_s(rc, "k17", "v", 0, 0), 0);
    assert_int_equal(hp_alloc_count(), a0 + 2); /* entry + bigger bucket array */
    for (int i = 0; i < 18; i++) {
        snprintf(k, sizeof k, "k%d", i);
        assert_true(has(rc, k, 0));
    }

    /* A sweep over a put that replaces, evicts and grows. */
    for (uint64_t n = 1;; n++) {
        snprintf(k, sizeof k, "n%llu", (unsigned long long)n);
        hp_alloc_fail_after(n, 1);
        int r = put_s(rc, k, "body", 0, 0);
        hp_alloc_fail_after(0, 0);
        if (r == 0)
            break;
        assert_int_equal(r, -ENOMEM);
        assert_false(has(rc, k, 0));
    }
    done(rc);
}

/* Reruns the tests and checks the heap is back where it was: a leak check
 * for builds without LeakSanitizer. */
static void test_no_leak(void **state)
{
    bool exact = getenv("GLIBC_TUNABLES") && strcmp(getenv("GLIBC_TUNABLES"), TUNABLES) == 0;
    test_hit_identical(state); /* warm up */
    size_t before = mallinfo2().uordblks;
    test_hit_identical(state);
    test_replace(state);
    test_lru_bytes(state);
    test_referenced_eviction(state);
    test_clear_and_free_with_refs(state);
    test_growth(state);
    test_random_model(state);
    test_key_builder(state);
    test_oom_new(state);
    test_oom_put(state);
    if (exact)
        assert_int_equal(mallinfo2().uordblks, before);
    else
        print_message("heap figure inexact (GLIBC_TUNABLES not applied): compared nothing\n");
}

int main(int argc, char **argv)
{
    (void)argc;
    const char *t = getenv("GLIBC_TUNABLES");
    if (!(t && strcmp(t, TUNABLES) == 0) && !getenv("HP_TEST_REEXEC")) {
        setenv("HP_TEST_REEXEC", "1", 1);
        setenv("GLIBC_TUNABLES", TUNABLES, 1);
        execv("/proc/self/exe", argv);
        /* Carry on without an exact heap figure. */
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_args),
        cmocka_unit_test(test_hit_identical),
        cmocka_unit_test(test_miss),
        cmocka_unit_test(test_ttl_boundary),
        cmocka_unit_test(test_default_ttl_and_cap),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_lru_entries),
        cmocka_unit_test(test_lru_bytes),
        cmocka_unit_test(test_referenced_eviction),
        cmocka_unit_test(test_clear_and_free_with_refs),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_random_model),
        cmocka_unit_test(test_key_builder),
        cmocka_unit_test(test_max_age),
        cmocka_unit_test(test_oom_new),
        cmocka_unit_test(test_oom_put),
        cmocka_unit_test(test_no_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
