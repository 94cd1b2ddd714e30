/*
 * test_message.c - unit tests for what src/amqp/message.c adds to a
 * delivery beyond handing it over (test_client.c covers that): the
 * publish-to-deliver histogram fed by the HP_AMQP_STAMP_HEADER header,
 * against the scripted fake broker (amqp_harness.h).
 *
 * Deliveries (consume and get) stamped a known time ago land in the
 * histogram at that latency; unstamped ones, stamps of another type or
 * negative, and returned messages add nothing; a stamp ahead of the clock
 * counts as 0 and one older than the histogram's top as the top; reset
 * empties it; the histogram survives an allocation failure (no sample,
 * the delivery still made) and is freed with the connection (teardown
 * counts the blocks).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "amqp_harness.h"
#include "hotpath/hist.h"
#include "hotpath/log.h"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint8_t hbuf[256];

/* Headers holding a trace id and, unless type is 0, the stamp as `type`. */
static hp_amqp_props_t stamped(uint8_t type, int64_t ms)
{
    hp_amqp_table_builder_t b;
    hp_amqp_table_init(&b, hbuf, sizeof hbuf);
    hp_amqp_table_add_str(&b, "trace-id", "abc");
    hp_amqp_value_t v = {.type = type};
    if (type == HP_AMQP_T_U32)
        v.u = (uint64_t)ms;
    else if (type == HP_AMQP_T_STRING)
        v.bytes = hp_amqp_str("1700000000000");
    else
        v.i = ms;
    if (type)
        hp_amqp_table_add(&b, HP_AMQP_STAMP_HEADER, &v);
    hp_amqp_props_t p = {.flags = HP_AMQP_PROP_HEADERS};
    assert_int_equal(hp_amqp_table_finish(&b, &p.headers), 0);
    return p;
}

/* A consumer "ct" on a new channel. */
static hp_amqp_channel_t *consume(void)
{
    hp_amqp_channel_t *ch = open_channel();
    uint16_t id = hp_amqp_channel_id(ch);
    assert_int_equal(hp_amqp_consume(ch, "jobs", "ct", HP_AMQP_NO_ACK, HP_AMQP_NO_ARGS, on_msg,
                                     (void *)1, on_done, (void *)2),
                     0);
    broker_expect_on(id, HP_AMQP_BASIC_CONSUME);
    hp_amqp_method_t ok = {.id = HP_AMQP_BASIC_CONSUME_OK};
    ok.basic_consume_ok.consumer_tag = hp_amqp_str("ct");
    broker_send(id, &ok);
    return ch;
}

static void deliver(uint16_t id, const hp_amqp_props_t *props)
{
    static uint64_t tag;
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_DELIVER};
    m.basic_deliver.consumer_tag = hp_amqp_str("ct");
    m.basic_deliver.delivery_tag = ++tag;
    m.basic_deliver.routing_key = hp_amqp_str("jobs");
    int before = T.ndlv;
    broker_send_message(id, &m, props, "x", 1, 1);
    assert_int_equal(T.ndlv, before + 1); /* delivered, whatever its stamp */
}

static uint64_t samples(void)
{
    const hp_hist_t *h = hp_amqp_deliver_latency(T.conn);
    if (h)
        assert_int_equal(hp_hist_validate(h), 0);
    return h ? hp_hist_count(h) : 0;
}

/* Stamped deliveries are measured; the others are not. */
static void test_stamps_are_measured(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = consume();
    uint16_t id = hp_amqp_channel_id(ch);
    /* Nothing stamped yet: no histogram at all. */
    deliver(id, NULL);
    hp_amqp_props_t p = stamped(0, 0);
    deliver(id, &p);
    p = stamped(HP_AMQP_T_STRING, 0);
    deliver(id, &p);
    p = stamped(HP_AMQP_T_I64, -5);
    deliver(id, &p);
    assert_null(hp_amqp_deliver_latency(T.conn));
    /* Sent 250 ms ago: recorded at 250 ms or a little more (the time this
     * test took; a generous bound, for slow machines). */
    int64_t t0 = wall_ms();
    p = stamped(HP_AMQP_T_I64, t0 - 250);
    deliver(id, &p);
    assert_int_equal(samples(), 1);
    const hp_hist_t *h = hp_amqp_deliver_latency(T.conn);
    assert_true(hp_hist_min(h) >= 250 * 1000000ull);
    assert_true(hp_hist_max(h) <= (uint64_t)(wall_ms() - t0 + 250) * 1000000ull);
    /* Whatever the integer's width. */
    p = stamped(HP_AMQP_T_I32, 0x7fffffff);
    deliver(id, &p);
    p = stamped(HP_AMQP_T_U32, 0xffffffffu);
    deliver(id, &p);
    assert_int_equal(samples(), 3);
    /* A stamp ahead of this clock counts as 0. */
    p = stamped(HP_AMQP_T_I64, wall_ms() + 60000);
    deliver(id, &p);
    assert_int_equal(samples(), 4);
    assert_int_equal(hp_hist_min(h), 0);
    /* The epoch, and the largest stamp: an hour and more, clamped. */
    uint64_t over = h->overflow;
    p = stamped(HP_AMQP_T_I64, 0);
    deliver(id, &p);
    p = stamped(HP_AMQP_T_I64, INT64_MAX);
    deliver(id, &p);
    assert_int_equal(samples(), 6);
    assert_int_equal(h->overflow, over + 1);
    assert_int_equal(hp_hist_min(h), 0);
    /* basic.get-ok is a delivery too. */
    assert_int_equal(
        hp_amqp_get(ch, "jobs", HP_AMQP_NO_ACK, on_msg, (void *)3, on_done, (void *)4), 0);
    broker_expect_on(id, HP_AMQP_BASIC_GET);
    hp_amqp_method_t g = {.id = HP_AMQP_BASIC_GET_OK};
    g.basic_get_ok.delivery_tag = 100;
    g.basic_get_ok.routing_key = hp_amqp_str("jobs");
    p = stamped(HP_AMQP_T_I64, wall_ms() - 10);
    broker_send_message(id, &g, &p, "y", 1, 1);
    assert_int_equal(samples(), 7);
    /* A returned message is not a delivery. */
    hp_amqp_method_t r = {.id = HP_AMQP_BASIC_RETURN};
    r.basic_return.reply_code = HP_AMQP_NO_ROUTE;
    r.basic_return.reply_text = hp_amqp_str("NO_ROUTE");
    r.basic_return.routing_key = hp_amqp_str("nowhere");
    broker_send_message(id, &r, &p, "z", 1, 1);
    assert_int_equal(samples(), 7);
    /* Reset empties it, and it fills again. */
    hp_amqp_deliver_latency_reset(T.conn);
    assert_int_equal(samples(), 0);
    p = stamped(HP_AMQP_T_I64, wall_ms());
    deliver(id, &p);
    assert_int_equal(samples(), 1);
    close_gracefully();
}

/* No memory for the histogram: the delivery is made, without a sample;
 * the next stamped one makes it. */
static void test_no_memory_for_the_histogram(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = consume();
    uint16_t id = hp_amqp_channel_id(ch);
    hp_amqp_deliver_latency_reset(T.conn); /* nothing to reset: nothing happens */
    hp_amqp_props_t p = stamped(HP_AMQP_T_I64, wall_ms());
    for (uint64_t n = 1; n <= 2; n++) {
        /* The struct, then its counts. */
        hp_alloc_fail_after(n, 0);
        deliver(id, &p);
        hp_alloc_fail_after(0, 0);
        assert_null(hp_amqp_deliver_latency(T.conn));
    }
    deliver(id, &p);
    assert_int_equal(samples(), 1);
    close_gracefully();
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    hp_log_set_level(HP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stamps_are_measured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_memory_for_the_histogram, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
