/*
 * test_alloc.c - unit tests for src/core/alloc.c: the allocation counter
 * and the fault injection every other test's OOM sweep relies on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hotpath/alloc.h"

static void test_counts(void **state)
{
    (void)state;
    uint64_t a0 = hp_alloc_count();
    char *p = hp_malloc(100);
    assert_non_null(p);
    memset(p, 1, 100);
    assert_int_equal(hp_alloc_count(), a0 + 1);
    int *z = hp_calloc(10, sizeof(int));
    assert_non_null(z);
    for (int i = 0; i < 10; i++)
        assert_int_equal(z[i], 0);
    assert_int_equal(hp_alloc_count(), a0 + 2);
    p = hp_realloc(p, 1000);
    assert_non_null(p);
    assert_int_equal(p[99], 1); /* contents kept */
    assert_int_equal(hp_alloc_count(), a0 + 3);
    hp_free(p);
    hp_free(z);
    hp_free(NULL);
    assert_int_equal(hp_alloc_count(), a0 + 3); /* frees do not count */
}

static void test_fail_once(void **state)
{
    (void)state;
    uint64_t a0 = hp_alloc_count();
    hp_alloc_fail_after(3, 0);
    void *a = hp_malloc(8), *b = hp_malloc(8);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(hp_malloc(8)); /* the 3rd */
    void *c = hp_malloc(8);    /* one-shot: back to normal */
    assert_non_null(c);
    assert_int_equal(hp_alloc_count(), a0 + 3);
    hp_free(a);
    hp_free(b);
    hp_free(c);
    /* 1 = the very next one; each entry point is covered */
    hp_alloc_fail_after(1, 0);
    assert_null(hp_calloc(1, 8));
    hp_alloc_fail_after(1, 0);
    void *r = hp_malloc(8);
    assert_null(r);
    r = hp_malloc(8);
    hp_alloc_fail_after(1, 0);
    assert_null(hp_realloc(r, 64)); /* r still valid, untouched */
    hp_free(r);
}

static void test_fail_sticky_and_off(void **state)
{
    (void)state;
    hp_alloc_fail_after(2, 1);
    void *a = hp_malloc(8);
    assert_non_null(a);
    for (int i = 0; i < 5; i++)
        assert_null(hp_malloc(8));
    hp_alloc_fail_after(0, 0); /* off */
    void *b = hp_malloc(8);
    assert_non_null(b);
    hp_free(a);
    hp_free(b);
}

static void test_calloc_aligned(void **state)
{
    (void)state;
    uint64_t a0 = hp_alloc_count();
    size_t sizes[] = {0, 1, 63, 64, 65, 4096, 100000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *p = hp_calloc_aligned(sizes[i]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 64, 0);
        for (size_t k = 0; k < sizes[i]; k++)
            assert_int_equal(p[k], 0);
        hp_free(p);
    }
    assert_int_equal(hp_alloc_count(), a0 + 7);
    hp_alloc_fail_after(1, 0);
    assert_null(hp_calloc_aligned(64));
    assert_int_equal(hp_alloc_count(), a0 + 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_fail_once),
        cmocka_unit_test(test_fail_sticky_and_off),
        cmocka_unit_test(test_calloc_aligned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
