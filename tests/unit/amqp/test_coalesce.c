/*
 * test_coalesce.c - unit tests for the client's read coalescing
 * (hp_amqp_config_t.read_coalesce_ms, src/amqp/client.c), against the
 * scripted fake broker (amqp_harness.h) on the manual clock.
 *
 * Reads in two iterations within the period raise the socket's low-water
 * mark to 64 KiB; a delivery below it then waits, unread, for the
 * period's tick, which reads it; a tick after a period without bytes
 * lowers the mark to 1 again, and a lone delivery is read at once as
 * before; 64 KiB of deliveries are read without a tick. Reads further
 * apart than the period never raise it, nor does a client without the
 * setting. A connection closed while coalescing leaves no timer behind
 * (teardown counts the blocks; ASan sees the rest).
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

#include <cmocka.h>

#include "amqp_harness.h"
#include "hotpath/log.h"

#define PERIOD 5

/* The client socket's SO_RCVLOWAT. */
static int lowat(void)
{
    int v = 0;
    socklen_t len = sizeof v;
    assert_int_equal(getsockopt(hp_conn_fd(T.conn->c), SOL_SOCKET, SO_RCVLOWAT, &v, &len), 0);
    return v;
}

/* The mark is raised: its timer runs. */
static bool coalescing(void)
{
    return hp_timer_armed(&T.conn->coalesce_timer);
}

/* A READY client with `ms` of coalescing and a consumer "ct" on a new
 * channel; the clock moved on past a period since the last read. */
static uint16_t consumer(uint32_t ms)
{
    hp_amqp_config_t cfg = test_cfg();
    cfg.read_coalesce_ms = ms;
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *ch = open_channel();
    uint16_t id = hp_amqp_channel_id(ch);
    tick(PERIOD + 1);
    assert_int_equal(hp_amqp_consume(ch, "jobs", "ct", HP_AMQP_NO_ACK, HP_AMQP_NO_ARGS, on_msg,
                                     NULL, on_done, NULL),
                     0);
    broker_expect_on(id, HP_AMQP_BASIC_CONSUME);
    hp_amqp_method_t ok = {.id = HP_AMQP_BASIC_CONSUME_OK};
    ok.basic_consume_ok.consumer_tag = hp_amqp_str("ct");
    broker_send(id, &ok);
    tick(PERIOD + 1);
    return id;
}

/* Writes one delivery of `len` bytes of body, without waiting for the
 * client to read it. */
static void deliver_raw(uint16_t id, size_t len)
{
    static uint64_t tag;
    static uint8_t body[4096], buf[8192];
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_DELIVER};
    m.basic_deliver.consumer_tag = hp_amqp_str("ct");
    m.basic_deliver.delivery_tag = ++tag;
    m.basic_deliver.routing_key = hp_amqp_str("jobs");
    assert_true(len <= sizeof body);
    broker_write(buf, msg_build(buf, sizeof buf, id, &m, NULL, body, len, 1));
}

/* One delivery, read at once: the client wakes for it. */
static void deliver_now(uint16_t id)
{
    int before = T.ndlv;
    deliver_raw(id, 10);
    PUMP_UNTIL(T.ndlv == before + 1, 1000);
    assert_int_equal(T.ndlv, before + 1);
}

static void test_busy_raises_idle_lowers(void **state)
{
    (void)state;
    uint16_t id = consumer(PERIOD);
    assert_int_equal(lowat(), 1);
    /* A period after the last read: not busy yet. */
    deliver_now(id);
    assert_int_equal(lowat(), 1);
    assert_false(coalescing());
    /* The next read in the same millisecond: busy. */
    deliver_now(id);
    assert_int_equal(lowat(), 64 * 1024);
    assert_true(coalescing());
    /* Below the mark: no wake-up, the delivery waits for the tick. */
    int before = T.ndlv;
    deliver_raw(id, 10);
    pump_for(30);
    assert_int_equal(T.ndlv, before);
    tick(PERIOD - 1);
    assert_int_equal(T.ndlv, before);
    tick(1);
    PUMP_UNTIL(T.ndlv == before + 1, 1000);
    assert_int_equal(T.ndlv, before + 1);
    /* 64 KiB and more (17 deliveries of 4 KB): read without a tick. */
    for (int i = 0; i < 17; i++)
        deliver_raw(id, 4000);
    PUMP_UNTIL(T.ndlv == before + 18, 1000);
    assert_int_equal(T.ndlv, before + 18);
    assert_true(coalescing());
    /* The tick after the period with bytes keeps the mark (its read
     * finds nothing); the one after a period without lowers it. */
    tick(PERIOD);
    assert_true(coalescing());
    assert_int_equal(lowat(), 64 * 1024);
    tick(PERIOD);
    assert_false(coalescing());
    assert_int_equal(lowat(), 1);
    /* Idle again: a lone delivery wakes the client at once. */
    tick(PERIOD + 1);
    deliver_now(id);
    assert_int_equal(lowat(), 1);
    close_gracefully();
}

/* What waits below the mark when it is lowered is read then, not left
 * for an edge that will not come. */
static void test_lowering_reads_what_waited(void **state)
{
    (void)state;
    uint16_t id = consumer(PERIOD);
    deliver_now(id);
    deliver_now(id);
    assert_true(coalescing());
    tick(PERIOD); /* a period with bytes: its read finds none */
    assert_true(coalescing());
    /* Bytes come in below the mark; the next tick ends coalescing (its
     * period saw no read) and they are read then. */
    int before = T.ndlv;
    deliver_raw(id, 10);
    pump_for(20);
    assert_int_equal(T.ndlv, before);
    tick(PERIOD);
    PUMP_UNTIL(T.ndlv == before + 1, 1000);
    assert_int_equal(T.ndlv, before + 1);
    assert_false(coalescing());
    assert_int_equal(lowat(), 1);
    close_gracefully();
}

static void test_slow_or_off_never_raises(void **state)
{
    (void)state;
    uint16_t id = consumer(PERIOD);
    for (int i = 0; i < 5; i++) {
        deliver_now(id);
        assert_int_equal(lowat(), 1);
        tick(PERIOD + 1);
    }
    close_gracefully();
    teardown(NULL);
    setup(NULL);
    id = consumer(0);
    for (int i = 0; i < 5; i++)
        deliver_now(id);
    assert_int_equal(lowat(), 1);
    assert_false(coalescing());
    close_gracefully();
}

/* The broker goes away while the mark is raised: CLOSED, and the timer
 * goes with the connection. */
static void test_closed_while_coalescing(void **state)
{
    (void)state;
    uint16_t id = consumer(PERIOD);
    deliver_now(id);
    deliver_now(id);
    assert_true(coalescing());
    broker_close();
    /* The FIN wakes the client, or the tick's read finds it. */
    tick(PERIOD);
    PUMP_UNTIL(T.closed == 1, 1000);
    assert_int_equal(T.closed, 1);
    tick(PERIOD * 3);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    hp_log_set_level(HP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_busy_raises_idle_lowers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lowering_reads_what_waited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_or_off_never_raises, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_while_coalescing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
