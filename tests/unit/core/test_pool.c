/*
 * test_pool.c - unit tests for src/core/pool.c: argument checks, alignment,
 * LIFO reuse, slab growth, the max_chunks cap, zero allocations in steady
 * state, an out-of-memory sweep over growth. Leaks: every test destroys its
 * pool and checks the byte counters; the ASan build (LeakSanitizer) proves
 * the slabs and the slab index really went back to the allocator.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hotpath/alloc.h"
#include "core/pool_int.h"

static void check(const hp_pool_t *p)
{
    assert_int_equal(hp_pool_validate(p), 0);
}

static void test_init_args(void **state)
{
    (void)state;
    hp_pool_t p;
    uint64_t a0 = hp_alloc_count();
    assert_int_equal(hp_pool_init(&p, 0, 8, 0), -EINVAL);
    assert_int_equal(hp_pool_init(&p, 32, 8, 0), -EINVAL);
    assert_int_equal(hp_pool_init(&p, 63, 8, 0), -EINVAL);
    assert_int_equal(hp_pool_init(&p, 65, 8, 0), -EINVAL);
    assert_int_equal(hp_pool_init(&p, 100, 8, 0), -EINVAL);
    assert_int_equal(hp_pool_init(&p, 64, 0, 0), -EINVAL);
    assert_int_equal(hp_pool_init(&p, 64, 1, 0), 0);
    check(&p);
    assert_int_equal(hp_pool_init(&p, 4096, 16, 3), 0);
    check(&p);
    /* init allocates nothing */
    assert_int_equal(hp_alloc_count(), a0);
    assert_int_equal(hp_pool_capacity(&p), 0);
    assert_int_equal(hp_pool_in_use(&p), 0);
    assert_int_equal(hp_pool_bytes(&p), 0);
    hp_pool_destroy(&p); /* never allocated: still fine */
}

static void test_get_put_basic(void **state)
{
    (void)state;
    hp_pool_t p;
    assert_int_equal(hp_pool_init(&p, 192, 4, 0), 0);
    enum { N = 37 };
    unsigned char *c[N];
    for (int i = 0; i < N; i++) {
        c[i] = hp_pool_get(&p);
        assert_non_null(c[i]);
        assert_int_equal((uintptr_t)c[i] % 64, 0);
        /* every byte of the chunk is ours: write it all (ASan checks) */
        memset(c[i], i + 1, 192);
        assert_int_equal(hp_pool_in_use(&p), i + 1);
        check(&p);
    }
    /* 37 chunks in slabs of 4: 10 slabs */
    assert_int_equal(hp_pool_capacity(&p), 40);
    assert_int_equal(hp_pool_bytes(&p), 10 * (4 * 192 + 63));
    /* chunks are distinct and do not overlap: contents survived */
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < 192; j++)
            assert_int_equal(c[i][j], i + 1);
        for (int k = i + 1; k < N; k++) {
            ptrdiff_t d = c[i] - c[k];
            assert_true(d >= 192 || d <= -192);
        }
    }
    for (int i = 0; i < N; i++) {
        hp_pool_put(&p, c[i]);
        check(&p);
    }
    assert_int_equal(hp_pool_in_use(&p), 0);
    assert_int_equal(hp_pool_capacity(&p), 40); /* put never frees */
    hp_pool_destroy(&p);
    assert_int_equal(hp_pool_capacity(&p), 0);
    assert_int_equal(hp_pool_bytes(&p), 0);
}

static void test_lifo(void **state)
{
    (void)state;
    hp_pool_t p;
    assert_int_equal(hp_pool_init(&p, 64, 8, 0), 0);
    void *a = hp_pool_get(&p), *b = hp_pool_get(&p), *c = hp_pool_get(&p);
    assert_true(a != b && b != c && a != c);
    hp_pool_put(&p, a);
    hp_pool_put(&p, c);
    hp_pool_put(&p, b);
    check(&p);
    /* most recently returned first */
    assert_ptr_equal(hp_pool_get(&p), b);
    assert_ptr_equal(hp_pool_get(&p), c);
    hp_pool_put(&p, c);
    assert_ptr_equal(hp_pool_get(&p), c);
    assert_ptr_equal(hp_pool_get(&p), a);
    check(&p);
    hp_pool_put(&p, a);
    hp_pool_put(&p, b);
    hp_pool_put(&p, c);
    check(&p);
    hp_pool_destroy(&p);
}

static void test_steady_state_no_alloc(void **state)
{
    (void)state;
    hp_pool_t p;
    assert_int_equal(hp_pool_init(&p, 128, 8, 0), 0);
    enum { PEAK = 50 };
    void *c[PEAK];
    /* warm up to the peak working set */
    for (int i = 0; i < PEAK; i++)
        assert_non_null(c[i] = hp_pool_get(&p));
    for (int i = 0; i < PEAK; i++)
        hp_pool_put(&p, c[i]);
    uint32_t cap = hp_pool_capacity(&p);
    uint64_t a0 = hp_alloc_count();
    /* pseudo-random get/put traffic that never exceeds the peak */
    uint32_t x = 12345, held = 0;
    for (int round = 0; round < 100000; round++) {
        x = x * 1103515245u + 12345u;
        if (held < PEAK && (held == 0 || (x >> 16) % 2)) {
            assert_non_null(c[held] = hp_pool_get(&p));
            held++;
        } else {
            /* return a random held chunk, not always the last one */
            uint32_t k = (x >> 8) % held;
            hp_pool_put(&p, c[k]);
            c[k] = c[--held];
        }
        if (round % 1000 == 0)
            check(&p);
    }
    assert_int_equal(hp_alloc_count(), a0);
    assert_int_equal(hp_pool_capacity(&p), cap);
    assert_int_equal(hp_pool_in_use(&p), held);
    check(&p);
    while (held)
        hp_pool_put(&p, c[--held]);
    hp_pool_destroy(&p);
}

static void test_max_chunks(void **state)
{
    (void)state;
    hp_pool_t p;
    /* cap 10 with slabs of 4: the third slab is cut to 2 */
    assert_int_equal(hp_pool_init(&p, 64, 4, 10), 0);
    void *c[10];
    for (int i = 0; i < 10; i++) {
        assert_non_null(c[i] = hp_pool_get(&p));
        check(&p);
    }
    uint64_t a0 = hp_alloc_count();
    assert_null(hp_pool_get(&p));
    assert_null(hp_pool_get(&p));
    assert_int_equal(hp_alloc_count(), a0); /* refused without trying */
    assert_int_equal(hp_pool_capacity(&p), 10);
    assert_int_equal(hp_pool_in_use(&p), 10);
    check(&p);
    hp_pool_put(&p, c[3]);
    assert_ptr_equal(hp_pool_get(&p), c[3]);
    assert_null(hp_pool_get(&p));
    for (int i = 0; i < 10; i++)
        hp_pool_put(&p, c[i]);
    check(&p);
    hp_pool_destroy(&p);

    /* cap smaller than one slab */
    assert_int_equal(hp_pool_init(&p, 64, 100, 3), 0);
    for (int i = 0; i < 3; i++)
        assert_non_null(c[i] = hp_pool_get(&p));
    assert_null(hp_pool_get(&p));
    assert_int_equal(hp_pool_capacity(&p), 3);
    assert_int_equal(hp_pool_bytes(&p), 3 * 64 + 63);
    for (int i = 0; i < 3; i++)
        hp_pool_put(&p, c[i]);
    check(&p);
    hp_pool_destroy(&p);
}

/* Fails the n-th allocation of a growth sequence for every n until a run
 * completes; after each failure the pool must be valid, unchanged in its
 * counts, and usable once memory is back. */
static void test_oom_sweep(void **state)
{
    (void)state;
    enum { WANT = 40 };
    for (uint64_t n = 1;; n++) {
        hp_pool_t p;
        assert_int_equal(hp_pool_init(&p, 64, 2, 0), 0);
        void *c[WANT];
        int got = 0;
        hp_alloc_fail_after(n, 0);
        while (got < WANT) {
            uint32_t cap = hp_pool_capacity(&p);
            c[got] = hp_pool_get(&p);
            check(&p);
            if (!c[got]) {
                assert_int_equal(hp_pool_capacity(&p), cap);
                assert_int_equal(hp_pool_in_use(&p), got);
                break;
            }
            got++;
        }
        bool failed = got < WANT;
        hp_alloc_fail_after(0, 0);
        /* recovers: fill up to WANT once memory is available again */
        while (got < WANT) {
            assert_non_null(c[got] = hp_pool_get(&p));
            got++;
            check(&p);
        }
        while (got)
            hp_pool_put(&p, c[--got]);
        check(&p);
        hp_pool_destroy(&p);
        if (!failed) {
            /* 20 slabs + index 4 -> 8 -> 16 -> 32 = 24 allocations */
            assert_int_equal(n, 25);
            break;
        }
    }
    /* sticky failure: every growth fails, nothing leaks, pool stays valid */
    hp_pool_t p;
    assert_int_equal(hp_pool_init(&p, 64, 2, 0), 0);
    void *a = hp_pool_get(&p), *b = hp_pool_get(&p);
    assert_non_null(a);
    assert_non_null(b);
    hp_alloc_fail_after(1, 1);
    for (int i = 0; i < 10; i++)
        assert_null(hp_pool_get(&p));
    hp_alloc_fail_after(0, 0);
    check(&p);
    hp_pool_put(&p, a);
    hp_pool_put(&p, b);
    hp_pool_destroy(&p);
}

/* A corrupted free list must be caught by validate. */
static void test_validate_detects(void **state)
{
    (void)state;
    hp_pool_t p;
    assert_int_equal(hp_pool_init(&p, 64, 4, 0), 0);
    void *a = hp_pool_get(&p), *b = hp_pool_get(&p);
    hp_pool_put(&p, a);
    hp_pool_put(&p, b);
    check(&p);
    /* cycle: a -> b -> a */
    void *saved;
    memcpy(&saved, a, sizeof(saved));
    memcpy(a, &b, sizeof(b));
    assert_int_equal(hp_pool_validate(&p), -EINVAL);
    /* misaligned link */
    void *bad = (char *)b + 8;
    memcpy(a, &bad, sizeof(bad));
    assert_int_equal(hp_pool_validate(&p), -EINVAL);
    memcpy(a, &saved, sizeof(saved));
    check(&p);
    /* counter drift */
    p.in_use++;
    assert_int_equal(hp_pool_validate(&p), -EINVAL);
    p.in_use--;
    check(&p);
    hp_pool_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_args),
        cmocka_unit_test(test_get_put_basic),
        cmocka_unit_test(test_lifo),
        cmocka_unit_test(test_steady_state_no_alloc),
        cmocka_unit_test(test_max_chunks),
        cmocka_unit_test(test_oom_sweep),
        cmocka_unit_test(test_validate_detects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
