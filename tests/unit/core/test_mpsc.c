/*
 * test_mpsc.c - unit tests for src/core/mpsc.c: argument checks, a
 * two-slot ring across its full/empty boundaries and many wrap-arounds,
 * FIFO order, an out-of-memory sweep on init, and a 4-producer pthread
 * stress test that checks every message arrives exactly once and in each
 * producer's order.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hotpath/alloc.h"
#include "core/mpsc_int.h"

static void check(const hp_mpsc_t *q)
{
    assert_int_equal(hp_mpsc_validate(q), 0);
}

static hp_msg_t msg(uint32_t type, uint32_t from, uint64_t arg, void *ptr)
{
    return (hp_msg_t){.type = type, .from = from, .arg = arg, .ptr = ptr};
}

static void test_init_args(void **state)
{
    (void)state;
    hp_mpsc_t q;
    uint64_t a0 = hp_alloc_count();
    uint32_t bad[] = {0, 1, 3, 6, 1000, 0x80000001u};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(hp_mpsc_init(&q, bad[i]), -EINVAL);
    assert_int_equal(hp_alloc_count(), a0);
    uint32_t good[] = {2, 4, 64, 4096};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(hp_mpsc_init(&q, good[i]), 0);
        check(&q);
        /* exactly capacity pushes fit */
        hp_msg_t m = msg(1, 2, 3, NULL), out;
        for (uint32_t k = 0; k < good[i]; k++)
            assert_true(hp_mpsc_push(&q, &m));
        assert_false(hp_mpsc_push(&q, &m));
        check(&q);
        for (uint32_t k = 0; k < good[i]; k++)
            assert_true(hp_mpsc_pop(&q, &out));
        assert_false(hp_mpsc_pop(&q, &out));
        check(&q);
        hp_mpsc_destroy(&q);
    }
    /* the hot positions really are on separate cache lines */
    assert_true(offsetof(hp_mpsc_t, head) - offsetof(hp_mpsc_t, tail) >= 64);
    assert_true(offsetof(hp_mpsc_t, tail) - offsetof(hp_mpsc_t, mask) >= 64);
    assert_true(sizeof(hp_mpsc_t) - offsetof(hp_mpsc_t, head) >= 64);
}

static void test_two_slots(void **state)
{
    (void)state;
    hp_mpsc_t q;
    assert_int_equal(hp_mpsc_init(&q, 2), 0);
    hp_msg_t out;
    int dummy[3];
    assert_false(hp_mpsc_pop(&q, &out));
    check(&q);
    uint64_t next_in = 0, next_out = 0;
    uint32_t x = 1;
    /* random walk between empty and full, many laps of the two slots */
    for (int step = 0; step < 20000; step++) {
        x = x * 1103515245u + 12345u;
        uint64_t fill = next_in - next_out;
        if ((x >> 16) & 1) {
            hp_msg_t m = msg(7, (uint32_t)step, next_in, &dummy[next_in % 3]);
            bool ok = hp_mpsc_push(&q, &m);
            assert_int_equal(ok, fill < 2); /* full exactly at 2 */
            if (ok)
                next_in++;
        } else {
            memset(&out, 0xa5, sizeof(out));
            bool ok = hp_mpsc_pop(&q, &out);
            assert_int_equal(ok, fill > 0); /* empty exactly at 0 */
            if (ok) {
                assert_int_equal(out.type, 7);
                assert_int_equal(out.arg, next_out); /* FIFO */
                assert_ptr_equal(out.ptr, &dummy[next_out % 3]);
                next_out++;
            }
        }
        check(&q);
    }
    assert_true(next_out > 5000); /* it really wrapped many times */
    /* strict alternation full / empty */
    while (hp_mpsc_pop(&q, &out))
        ;
    for (uint64_t i = 0; i < 1000; i++) {
        hp_msg_t a = msg(1, 0, 2 * i, NULL), b = msg(1, 0, 2 * i + 1, NULL);
        assert_true(hp_mpsc_push(&q, &a));
        assert_true(hp_mpsc_push(&q, &b));
        assert_false(hp_mpsc_push(&q, &a));
        check(&q);
        assert_true(hp_mpsc_pop(&q, &out));
        assert_int_equal(out.arg, 2 * i);
        assert_true(hp_mpsc_pop(&q, &out));
        assert_int_equal(out.arg, 2 * i + 1);
        assert_false(hp_mpsc_pop(&q, &out));
        check(&q);
    }
    hp_mpsc_destroy(&q);
}

static void test_fifo_interleaved(void **state)
{
    (void)state;
    hp_mpsc_t q;
    assert_int_equal(hp_mpsc_init(&q, 8), 0);
    /* three "producers" on one thread, interleaved: global FIFO, so also
     * FIFO per producer */
    uint64_t sent = 0, got = 0;
    for (int round = 0; round < 500; round++) {
        for (uint32_t p = 0; p < 3 && sent - got < 8; p++) {
            hp_msg_t m = msg(p, p, sent++, NULL);
            assert_true(hp_mpsc_push(&q, &m));
        }
        hp_msg_t out;
        for (int k = 0; k < 2 && hp_mpsc_pop(&q, &out); k++) {
            assert_int_equal(out.arg, got);
            assert_int_equal(out.from, out.type);
            got++;
        }
        check(&q);
    }
    hp_mpsc_destroy(&q);
}

/* Messages still in the ring at destroy are dropped without leaking. */
static void test_destroy_nonempty(void **state)
{
    (void)state;
    hp_mpsc_t q;
    assert_int_equal(hp_mpsc_init(&q, 4), 0);
    hp_msg_t m = msg(1, 1, 1, NULL);
    assert_true(hp_mpsc_push(&q, &m));
    assert_true(hp_mpsc_push(&q, &m));
    hp_mpsc_destroy(&q);
    assert_null(q.raw);
}

static void test_oom(void **state)
{
    (void)state;
    for (uint64_t n = 1;; n++) {
        hp_mpsc_t q;
        uint64_t a0 = hp_alloc_count();
        hp_alloc_fail_after(n, 0);
        int rc = hp_mpsc_init(&q, 1024);
        hp_alloc_fail_after(0, 0);
        if (rc == 0) {
            assert_int_equal(n, 2); /* one allocation */
            check(&q);
            hp_mpsc_destroy(&q);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(hp_alloc_count(), a0);
        assert_null(q.raw);
    }
}

/* ---- threads ---------------------------------------------------------- */

enum { PRODUCERS = 4, PER_PRODUCER = 100000, MAGIC = 0x5eed };

typedef struct {
    hp_mpsc_t *q;
    uint32_t id;
    uint64_t full; /* pushes refused because the ring was full */
} prod_t;

static void *producer(void *arg)
{
    prod_t *p = arg;
    for (uint64_t i = 0; i < PER_PRODUCER; i++) {
        /* ptr carries a value derived from the payload so a torn copy
         * (message fields from two different pushes) is detected */
        hp_msg_t m = msg(MAGIC, p->id, i, (void *)(uintptr_t)(i * 7 + p->id));
        while (!hp_mpsc_push(p->q, &m)) {
            p->full++;
            sched_yield();
        }
    }
    return NULL;
}

static void run_stress(uint32_t capacity)
{
    hp_mpsc_t q;
    assert_int_equal(hp_mpsc_init(&q, capacity), 0);
    pthread_t th[PRODUCERS];
    prod_t args[PRODUCERS];
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        args[i] = (prod_t){.q = &q, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, producer, &args[i]), 0);
    }
    uint64_t next[PRODUCERS] = {0};
    uint64_t total = 0, empty = 0;
    while (total < (uint64_t)PRODUCERS * PER_PRODUCER) {
        hp_msg_t out;
        if (!hp_mpsc_pop(&q, &out)) {
            empty++;
            sched_yield();
            continue;
        }
        /* cmocka asserts are slow-ish; test cheaply and assert once */
        if (out.type != MAGIC || out.from >= PRODUCERS ||
            out.arg != next[out.from] ||
            out.ptr != (void *)(uintptr_t)(out.arg * 7 + out.from))
            fail_msg("bad message: type %x from %u arg %llu (want %llu)",
                     out.type, out.from, (unsigned long long)out.arg,
                     out.from < PRODUCERS
                         ? (unsigned long long)next[out.from]
                         : 0ULL);
        next[out.from]++;
        total++;
    }
    for (uint32_t i = 0; i < PRODUCERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    hp_msg_t out;
    assert_false(hp_mpsc_pop(&q, &out)); /* nothing extra */
    for (uint32_t i = 0; i < PRODUCERS; i++)
        assert_int_equal(next[i], PER_PRODUCER);
    check(&q);
    hp_mpsc_destroy(&q);
}

static void test_stress_4_producers(void **state)
{
    (void)state;
    run_stress(1024);
}

/* A tiny ring keeps producers bumping into "full" all the time. */
static void test_stress_tiny_ring(void **state)
{
    (void)state;
    run_stress(4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_args),
        cmocka_unit_test(test_two_slots),
        cmocka_unit_test(test_fifo_interleaved),
        cmocka_unit_test(test_destroy_nonempty),
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_stress_4_producers),
        cmocka_unit_test(test_stress_tiny_ring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
