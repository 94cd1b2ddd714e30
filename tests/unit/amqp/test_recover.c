/*
 * test_recover.c - unit tests for the AMQP client's automatic recovery
 * (src/amqp/recover.c, and its parts in client.c and channel.c) against the
 * scripted fake broker (amqp_harness.h).
 *
 * A test makes the client READY with recovery on, builds channels and
 * topology, then loses the connection (the broker closes the socket or
 * sends connection.close), moves the manual clock past the backoff and
 * accepts the client's second connection on the same listener: what the
 * client sends there (the handshake, then the replay of channels,
 * topology, qos, confirm mode and consumers, then the publishes sent
 * again) is read frame by frame in the order the recovery promises. The
 * backoff is pinned with recover_min_ms == recover_max_ms == 100: the
 * jittered delay is then in [1, 100], so nothing dials before the clock
 * moves and a tick of 100 always dials. Every test ends with as many heap
 * blocks live as it started with.
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

#include "hotpath/log.h"

#include "amqp_harness.h"

/* ---- helpers ---- */

static hp_amqp_config_t rcfg(void)
{
    hp_amqp_config_t c = test_cfg();
    c.recover = true;
    c.recover_min_ms = c.recover_max_ms = 100;
    c.recover_tries = 0;
    return c;
}

static void assert_bytes(hp_amqp_bytes_t b, const char *s)
{
    assert_int_equal(b.len, strlen(s));
    if (b.len)
        assert_memory_equal(b.ptr, s, b.len);
}

/* Nothing has dialed the broker (after the kernel had the time). */
static void assert_no_dial(void)
{
    pump_for(20);
    if (B.lfd < 0)
        return;
    int fd = accept4(B.lfd, NULL, NULL, SOCK_NONBLOCK);
    if (fd >= 0) {
        close(fd);
        fail_msg("the client dialed again");
    }
    assert_true(errno == EAGAIN);
}

/* The broker drops the TCP connection: RECOVERING follows. */
static void lose_tcp(void)
{
    broker_drop();
    assert_int_equal(T.recovering_r.err, -ECONNRESET);
    assert_int_equal(T.closed, 0);
}

/* The backoff runs out and the client dials again: accepted, the
 * handshake up to connection.open (not answered yet). */
static void redial_to_open(void)
{
    broker_redial_to_open(100);
    assert_int_equal(T.recovered, T.recovering - 1);
}

static void redial(void)
{
    redial_to_open();
    broker_send_id(0, HP_AMQP_CONNECTION_OPEN_OK);
    assert_int_equal(T.ready, 1); /* READY once: a recovery is not one */
}

static void send_declare_ok(uint16_t ch, const char *name)
{
    hp_amqp_method_t m = {.id = HP_AMQP_QUEUE_DECLARE_OK};
    m.queue_declare_ok.queue = hp_amqp_str(name);
    broker_send(ch, &m);
}

static void send_consume_ok(uint16_t ch, const char *tag)
{
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_CONSUME_OK};
    m.basic_consume_ok.consumer_tag = hp_amqp_str(tag);
    broker_send(ch, &m);
}

/* The last result must be `tag` with err 0. */
static void assert_done(int tag)
{
    assert_true(T.nres > 0);
    assert_int_equal(T.res[T.nres - 1].tag, tag);
    assert_int_equal(T.res[T.nres - 1].err, 0);
}

static void declare_exchange(hp_amqp_channel_t *ch, const char *name, const char *type)
{
    uint16_t id = hp_amqp_channel_id(ch);
    assert_int_equal(hp_amqp_exchange_declare(ch, name, type, HP_AMQP_DURABLE, HP_AMQP_NO_ARGS,
                                              on_done, (void *)31),
                     0);
    broker_ok(id, HP_AMQP_EXCHANGE_DECLARE, HP_AMQP_EXCHANGE_DECLARE_OK);
    assert_done(31);
}

static void declare_queue(hp_amqp_channel_t *ch, const char *ask, const char *named)
{
    uint16_t id = hp_amqp_channel_id(ch);
    assert_int_equal(hp_amqp_queue_declare(ch, ask, 0, HP_AMQP_NO_ARGS, on_done, (void *)32), 0);
    hp_amqp_method_t m = broker_expect_on(id, HP_AMQP_QUEUE_DECLARE);
    assert_bytes(m.queue_declare.queue, ask);
    send_declare_ok(id, named);
    assert_done(32);
    assert_string_equal(T.res[T.nres - 1].queue, named);
}

static void bind_queue(hp_amqp_channel_t *ch, const char *q, const char *ex, const char *rk)
{
    assert_int_equal(
        hp_amqp_queue_bind(ch, q, ex, rk, HP_AMQP_NO_ARGS, on_done, (void *)33), 0);
    broker_ok(hp_amqp_channel_id(ch), HP_AMQP_QUEUE_BIND, HP_AMQP_QUEUE_BIND_OK);
    assert_done(33);
}

static void confirm(hp_amqp_channel_t *ch)
{
    assert_int_equal(hp_amqp_confirm_select(ch, 0, on_done, (void *)34), 0);
    broker_ok(hp_amqp_channel_id(ch), HP_AMQP_CONFIRM_SELECT, HP_AMQP_CONFIRM_SELECT_OK);
    assert_done(34);
}

static void consume(hp_amqp_channel_t *ch, const char *q, const char *tag, unsigned flags,
                    int msg_tag)
{
    uint16_t id = hp_amqp_channel_id(ch);
    assert_int_equal(hp_amqp_consume(ch, q, tag, flags, HP_AMQP_NO_ARGS, on_msg,
                                     (void *)(intptr_t)msg_tag, on_done, (void *)35),
                     0);
    broker_expect_on(id, HP_AMQP_BASIC_CONSUME);
    send_consume_ok(id, tag);
    assert_done(35);
}

/* A replayed method on `ch`: checks nothing else arrived before it. */
static hp_amqp_method_t replay(uint16_t ch, uint32_t id)
{
    return broker_expect_on(ch, id);
}

static void deliver(uint16_t ch, const char *ctag, uint64_t dtag, const char *body)
{
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_DELIVER};
    m.basic_deliver.consumer_tag = hp_amqp_str(ctag);
    m.basic_deliver.delivery_tag = dtag;
    m.basic_deliver.exchange = hp_amqp_str("ex");
    m.basic_deliver.routing_key = hp_amqp_str("rk");
    broker_send_message(ch, &m, NULL, body, strlen(body), 1);
}

/* ---- 1. a loss after READY, and the replay in order ---- */

/* Two channels with topology declared on both, qos, confirm mode and a
 * consumer each; a call pending at the loss. RECOVERING once (-ECONNRESET),
 * the pending call fails with -ECONNRESET, new calls answer -EAGAIN,
 * nothing dials before the backoff; then, after the handshake: channel.open
 * for 1 and 2, the exchanges and queues on channel 1 in declaration order;
 * only once all are answered the bindings (channel 1), then qos and the
 * consumer on 1, confirm.select and the consumer on 2; RECOVERED after the
 * last answer only; a delivery then reaches the same callback. */
static void test_replay_order(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = rcfg();
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *c1 = open_channel(), *c2 = open_channel();
    assert_int_equal(hp_amqp_channel_id(c1), 1);
    assert_int_equal(hp_amqp_channel_id(c2), 2);
    declare_exchange(c1, "ex1", "direct");
    declare_queue(c1, "q1", "q1");
    declare_queue(c2, "q2", "q2");
    declare_exchange(c2, "ex2", "fanout");
    bind_queue(c1, "q1", "ex1", "rk1");
    bind_queue(c2, "q2", "ex2", "rk2");
    assert_int_equal(hp_amqp_qos(c1, 10, false, on_done, (void *)36), 0);
    broker_ok(1, HP_AMQP_BASIC_QOS, HP_AMQP_BASIC_QOS_OK);
    confirm(c2);
    consume(c1, "q1", "ctag-1", 0, 7);
    consume(c2, "q2", "ctag-2", HP_AMQP_NO_ACK, 8);
    assert_int_equal(hp_amqp_queue_declare(c1, "pending", 0, HP_AMQP_NO_ARGS, on_done,
                                           (void *)99),
                     0);
    broker_expect_on(1, HP_AMQP_QUEUE_DECLARE);
    int nres = T.nres;

    lose_tcp();
    assert_int_equal(T.recovering, 1);
    assert_int_equal(T.nres, nres + 1);
    assert_int_equal(T.res[nres].tag, 99);
    assert_int_equal(T.res[nres].err, -ECONNRESET);
    assert_true(T.res[nres].seq < T.recovering_r.seq); /* failed before the event */
    assert_int_equal(client_stats().state, HP_AMQP_STATE_RECOVERING);
    /* Calls made now: -EAGAIN, nothing queued, no callback. */
    hp_amqp_msg_t msg = {.exchange = "", .routing_key = "q", .body = "x", .len = 1};
    uint64_t seq = 0;
    assert_int_equal(hp_amqp_publish(c2, &msg, on_confirm, (void *)1, &seq), -EAGAIN);
    assert_int_equal(hp_amqp_publish(c1, &msg, NULL, NULL, NULL), -EAGAIN);
    assert_int_equal(hp_amqp_queue_declare(c1, "late", 0, HP_AMQP_NO_ARGS, on_done, (void *)98),
                     -EAGAIN);
    assert_int_equal(hp_amqp_exchange_declare(c2, "late", "direct", 0, HP_AMQP_NO_ARGS, on_done,
                                              (void *)98),
                     -EAGAIN);
    hp_amqp_channel_t *c3 = NULL;
    assert_int_equal(hp_amqp_channel_open(T.conn, on_done, (void *)97, &c3), -EAGAIN);
    assert_int_equal(T.nres, nres + 1);
    assert_int_equal(T.nconf, 0);
    /* The backoff: the clock has not moved, nothing dials. */
    assert_no_dial();
    assert_int_equal(T.recovering, 1);

    redial();
    /* Phase 1, in one batch. */
    replay(1, HP_AMQP_CHANNEL_OPEN);
    replay(2, HP_AMQP_CHANNEL_OPEN);
    hp_amqp_method_t m = replay(1, HP_AMQP_EXCHANGE_DECLARE);
    assert_bytes(m.exchange_declare.exchange, "ex1");
    assert_bytes(m.exchange_declare.type, "direct");
    assert_true(m.exchange_declare.durable);
    m = replay(1, HP_AMQP_QUEUE_DECLARE);
    assert_bytes(m.queue_declare.queue, "q1");
    m = replay(1, HP_AMQP_QUEUE_DECLARE);
    assert_bytes(m.queue_declare.queue, "q2");
    m = replay(1, HP_AMQP_EXCHANGE_DECLARE);
    assert_bytes(m.exchange_declare.exchange, "ex2");
    assert_bytes(m.exchange_declare.type, "fanout");
    broker_expect_nothing(); /* no "pending" queue: it never succeeded */
    broker_send_id(1, HP_AMQP_CHANNEL_OPEN_OK);
    broker_send_id(2, HP_AMQP_CHANNEL_OPEN_OK);
    broker_send_id(1, HP_AMQP_EXCHANGE_DECLARE_OK);
    send_declare_ok(1, "q1");
    send_declare_ok(1, "q2");
    broker_expect_nothing(); /* phase 2 waits for the last answer */
    broker_send_id(1, HP_AMQP_EXCHANGE_DECLARE_OK);
    /* Phase 2. */
    m = replay(1, HP_AMQP_QUEUE_BIND);
    assert_bytes(m.queue_bind.queue, "q1");
    assert_bytes(m.queue_bind.exchange, "ex1");
    assert_bytes(m.queue_bind.routing_key, "rk1");
    m = replay(1, HP_AMQP_QUEUE_BIND);
    assert_bytes(m.queue_bind.queue, "q2");
    assert_bytes(m.queue_bind.exchange, "ex2");
    assert_bytes(m.queue_bind.routing_key, "rk2");
    m = replay(1, HP_AMQP_BASIC_QOS);
    assert_int_equal(m.basic_qos.prefetch_count, 10);
    assert_false(m.basic_qos.global);
    m = replay(1, HP_AMQP_BASIC_CONSUME);
    assert_bytes(m.basic_consume.queue, "q1");
    assert_bytes(m.basic_consume.consumer_tag, "ctag-1");
    assert_false(m.basic_consume.no_ack);
    replay(2, HP_AMQP_CONFIRM_SELECT);
    m = replay(2, HP_AMQP_BASIC_CONSUME);
    assert_bytes(m.basic_consume.queue, "q2");
    assert_bytes(m.basic_consume.consumer_tag, "ctag-2");
    assert_true(m.basic_consume.no_ack);
    broker_expect_nothing();
    broker_send_id(1, HP_AMQP_QUEUE_BIND_OK);
    broker_send_id(1, HP_AMQP_QUEUE_BIND_OK);
    broker_send_id(1, HP_AMQP_BASIC_QOS_OK);
    send_consume_ok(1, "ctag-1");
    broker_send_id(2, HP_AMQP_CONFIRM_SELECT_OK);
    assert_int_equal(T.recovered, 0);
    assert_int_equal(client_stats().state, HP_AMQP_STATE_RECOVERING);
    send_consume_ok(2, "ctag-2");
    assert_int_equal(T.recovered, 1);
    assert_int_equal(T.recovering, 1);
    assert_int_equal(T.nres, nres + 1); /* the replay completes no caller's call */
    hp_amqp_stats_t s = client_stats();
    assert_int_equal(s.recoveries, 1);
    assert_int_equal(s.state, HP_AMQP_STATE_READY);

    /* The consumers are back on their callbacks. */
    deliver(1, "ctag-1", 1, "one");
    deliver(2, "ctag-2", 1, "two");
    assert_int_equal(T.ndlv, 2);
    assert_int_equal(T.dlv[0].tag, 7);
    assert_string_equal(T.dlv[0].ctag, "ctag-1");
    assert_int_equal(T.dlv[1].tag, 8);
    /* Calls go on. */
    declare_queue(c1, "after", "after");
    close_gracefully();
}

/* The broker closes the connection (320): RECOVERING carries its reply;
 * the recovery comes back; a second loss recovers again and counts. */
static void test_connection_close_320(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = rcfg();
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *c1 = open_channel();
    declare_queue(c1, "q1", "q1");
    hp_amqp_method_t cl = {.id = HP_AMQP_CONNECTION_CLOSE};
    cl.connection_close.reply_code = 320;
    cl.connection_close.reply_text = hp_amqp_str("CONNECTION_FORCED - shutdown");
    broker_send(0, &cl);
    broker_expect_on(0, HP_AMQP_CONNECTION_CLOSE_OK);
    PUMP_UNTIL(T.recovering == 1, 1000);
    assert_int_equal(T.recovering, 1);
    assert_int_equal(T.recovering_r.err, -EPROTO);
    assert_int_equal(T.recovering_r.code, 320);
    assert_string_equal(T.recovering_r.text, "CONNECTION_FORCED - shutdown");
    assert_int_equal(T.closed, 0);
    assert_no_dial();
    redial();
    replay(1, HP_AMQP_CHANNEL_OPEN);
    hp_amqp_method_t m = replay(1, HP_AMQP_QUEUE_DECLARE);
    assert_bytes(m.queue_declare.queue, "q1");
    broker_send_id(1, HP_AMQP_CHANNEL_OPEN_OK);
    assert_int_equal(T.recovered, 0);
    send_declare_ok(1, "q1");
    assert_int_equal(T.recovered, 1);
    assert_int_equal(client_stats().recoveries, 1);

    /* Again. */
    lose_tcp();
    assert_int_equal(T.recovering, 2);
    redial();
    broker_ok(1, HP_AMQP_CHANNEL_OPEN, HP_AMQP_CHANNEL_OPEN_OK);
    replay(1, HP_AMQP_QUEUE_DECLARE);
    send_declare_ok(1, "q1");
    assert_int_equal(T.recovered, 2);
    assert_int_equal(client_stats().recoveries, 2);
    close_gracefully();
}

/* ---- 2. a server-named queue gets a new name ---- */

/* Declared with "", named "amq.gen-A", bound and consumed; the re-declare
 * asks for "" again, and the bind and consume that follow name what the
 * broker answered this time. */
static void test_server_named_queue(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = rcfg();
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *c1 = open_channel();
    declare_exchange(c1, "ex", "direct");
    declare_queue(c1, "", "amq.gen-A");
    bind_queue(c1, "amq.gen-A", "ex", "rk");
    consume(c1, "amq.gen-A", "ctag-s", 0, 7);
    lose_tcp();
    redial();
    replay(1, HP_AMQP_CHANNEL_OPEN);
    replay(1, HP_AMQP_EXCHANGE_DECLARE);
    hp_amqp_method_t m = replay(1, HP_AMQP_QUEUE_DECLARE);
    assert_bytes(m.queue_declare.queue, "");
    broker_send_id(1, HP_AMQP_CHANNEL_OPEN_OK);
    broker_send_id(1, HP_AMQP_EXCHANGE_DECLARE_OK);
    send_declare_ok(1, "amq.gen-B");
    m = replay(1, HP_AMQP_QUEUE_BIND);
    assert_bytes(m.queue_bind.queue, "amq.gen-B");
    assert_bytes(m.queue_bind.exchange, "ex");
    m = replay(1, HP_AMQP_BASIC_CONSUME);
    assert_bytes(m.basic_consume.queue, "amq.gen-B");
    assert_bytes(m.basic_consume.consumer_tag, "ctag-s");
    broker_send_id(1, HP_AMQP_QUEUE_BIND_OK);
    send_consume_ok(1, "ctag-s");
    assert_int_equal(T.recovered, 1);

    /* Once more: the name it has now is the one that follows. */
    lose_tcp();
    redial();
    replay(1, HP_AMQP_CHANNEL_OPEN);
    replay(1, HP_AMQP_EXCHANGE_DECLARE);
    m = replay(1, HP_AMQP_QUEUE_DECLARE);
    assert_bytes(m.queue_declare.queue, "");
    broker_send_id(1, HP_AMQP_CHANNEL_OPEN_OK);
    broker_send_id(1, HP_AMQP_EXCHANGE_DECLARE_OK);
    send_declare_ok(1, "amq.gen-C");
    m = replay(1, HP_AMQP_QUEUE_BIND);
    assert_bytes(m.queue_bind.queue, "amq.gen-C");
    m = replay(1, HP_AMQP_BASIC_CONSUME);
    assert_bytes(m.basic_consume.queue, "amq.gen-C");
    broker_send_id(1, HP_AMQP_QUEUE_BIND_OK);
    send_consume_ok(1, "ctag-s");
    assert_int_equal(T.recovered, 2);
    close_gracefully();
}

/* ---- 3. what was deleted or unbound is not replayed ---- */

static void test_deleted_not_replayed(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = rcfg();
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *c1 = open_channel();
    declare_exchange(c1, "ex1", "direct");
    declare_exchange(c1, "ex2", "direct");
    declare_queue(c1, "q1", "q1");
    declare_queue(c1, "q2", "q2");
    declare_queue(c1, "q3", "q3");
    bind_queue(c1, "q1", "ex1", "a"); /* goes with ex1 */
    bind_queue(c1, "q2", "ex2", "b"); /* goes with q2 */
    bind_queue(c1, "q1", "ex2", "c"); /* unbound */
    bind_queue(c1, "q3", "ex2", "d"); /* stays */
    assert_int_equal(hp_amqp_queue_delete(c1, "q2", 0, on_done, (void *)40), 0);
    broker_expect_on(1, HP_AMQP_QUEUE_DELETE);
    broker_send(1, &(hp_amqp_method_t){.id = HP_AMQP_QUEUE_DELETE_OK});
    assert_done(40);
    assert_int_equal(hp_amqp_exchange_delete(c1, "ex1", 0, on_done, (void *)41), 0);
    broker_ok(1, HP_AMQP_EXCHANGE_DELETE, HP_AMQP_EXCHANGE_DELETE_OK);
    assert_done(41);
    assert_int_equal(
        hp_amqp_queue_unbind(c1, "q1", "ex2", "c", HP_AMQP_NO_ARGS, on_done, (void *)42), 0);
    broker_ok(1, HP_AMQP_QUEUE_UNBIND, HP_AMQP_QUEUE_UNBIND_OK);
    assert_done(42);
    /* A delete the broker refuses takes nothing out. */
    hp_amqp_channel_t *c2 = open_channel();
    assert_int_equal(hp_amqp_queue_delete(c2, "q3", HP_AMQP_IF_EMPTY, on_done, (void *)43), 0);
    broker_expect_on(2, HP_AMQP_QUEUE_DELETE);
    hp_amqp_method_t cl = {.id = HP_AMQP_CHANNEL_CLOSE};
    cl.channel_close.reply_code = 406;
    cl.channel_close.reply_text = hp_amqp_str("PRECONDITION_FAILED - queue not empty");
    broker_send(2, &cl);
    broker_expect_on(2, HP_AMQP_CHANNEL_CLOSE_OK);
    assert_int_equal(T.res[T.nres - 1].tag, 43);
    assert_int_equal(T.res[T.nres - 1].code, 406);

    lose_tcp();
    redial();
    replay(1, HP_AMQP_CHANNEL_OPEN);
    hp_amqp_method_t m = replay(1, HP_AMQP_EXCHANGE_DECLARE);
    assert_bytes(m.exchange_declare.exchange, "ex2");
    m = replay(1, HP_AMQP_QUEUE_DECLARE);
    assert_bytes(m.queue_declare.queue, "q1");
    m = replay(1, HP_AMQP_QUEUE_DECLARE);
    assert_bytes(m.queue_declare.queue, "q3");
    broker_expect_nothing();
    broker_send_id(1, HP_AMQP_CHANNEL_OPEN_OK);
    broker_send_id(1, HP_AMQP_EXCHANGE_DECLARE_OK);
    send_declare_ok(1, "q1");
    send_declare_ok(1, "q3");
    m = replay(1, HP_AMQP_QUEUE_BIND);
    assert_bytes(m.queue_bind.queue, "q3");
    assert_bytes(m.queue_bind.exchange, "ex2");
    assert_bytes(m.queue_bind.routing_key, "d");
    broker_expect_nothing();
    assert_int_equal(T.recovered, 0);
    broker_send_id(1, HP_AMQP_QUEUE_BIND_OK);
    assert_int_equal(T.recovered, 1);
    close_gracefully();
}

/* ---- 4. unconfirmed publishes ---- */

static void publish_n(hp_amqp_channel_t *ch, uint64_t want, const char *body)
{
    publish_want(ch, "ex", "rk", body, strlen(body), want);
}

/* One published message as the broker read it: method, header, body. */
typedef struct {
    hp_amqp_frame_t f[3];
} wire_msg_t;

static wire_msg_t read_publish(uint16_t ch)
{
    wire_msg_t w;
    for (int i = 0; i < 3; i++) {
        w.f[i] = broker_frame();
        assert_int_equal(w.f[i].channel, ch);
    }
    assert_int_equal(w.f[0].type, HP_AMQP_FRAME_METHOD);
    assert_int_equal(w.f[1].type, HP_AMQP_FRAME_HEADER);
    assert_int_equal(w.f[2].type, HP_AMQP_FRAME_BODY);
    hp_amqp_method_t m;
    assert_int_equal(hp_amqp_method_decode(w.f[0].payload.ptr, w.f[0].payload.len, &m), 0);
    assert_int_equal(m.id, HP_AMQP_BASIC_PUBLISH);
    return w;
}

static void assert_same_msg(const wire_msg_t *a, const wire_msg_t *b)
{
    for (int i = 0; i < 3; i++) {
        assert_int_equal(a->f[i].type, b->f[i].type);
        assert_int_equal(a->f[i].channel, b->f[i].channel);
        assert_int_equal(a->f[i].payload.len, b->f[i].payload.len);
        assert_memory_equal(a->f[i].payload.ptr, b->f[i].payload.ptr, a->f[i].payload.len);
    }
}

/* HP_AMQP_FAIL_UNCONFIRMED: each unconfirmed publish fails with
 * -ECONNRESET once, at the loss; nothing is sent again; numbers go on. */
static void test_unconfirmed_fail(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = rcfg();
    cfg.unconfirmed = HP_AMQP_FAIL_UNCONFIRMED;
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *c1 = open_channel();
    confirm(c1);
    publish_n(c1, 1, "one");
    publish_n(c1, 2, "two");
    publish_n(c1, 3, "three");
    for (int i = 0; i < 3; i++)
        read_publish(1);
    broker_ack(1, 1, false);
    assert_int_equal(T.nconf, 1);
    lose_tcp();
    assert_int_equal(T.nconf, 3);
    assert_int_equal(T.conf[1].seq, 2);
    assert_int_equal(T.conf[1].status, -ECONNRESET);
    assert_int_equal(T.conf[2].seq, 3);
    assert_int_equal(T.conf[2].status, -ECONNRESET);
    assert_true(T.conf[2].order < T.recovering_r.seq);
    hp_amqp_stats_t s = client_stats();
    assert_int_equal(s.published, 3);
    assert_int_equal(s.confirmed, 1);
    assert_int_equal(s.unconfirmed_failed, 2);
    redial();
    broker_ok(1, HP_AMQP_CHANNEL_OPEN, HP_AMQP_CHANNEL_OPEN_OK);
    broker_ok(1, HP_AMQP_CONFIRM_SELECT, HP_AMQP_CONFIRM_SELECT_OK);
    assert_int_equal(T.recovered, 1);
    broker_expect_nothing(); /* nothing published again */
    assert_int_equal(T.nconf, 3);
    /* The next number is one the caller has not seen; the broker's 1. */
    publish_n(c1, 4, "four");
    read_publish(1);
    broker_ack(1, 1, false);
    assert_int_equal(T.nconf, 4);
    assert_int_equal(T.conf[3].seq, 4);
    assert_int_equal(T.conf[3].status, HP_AMQP_ACKED);
    assert_each_once(4);
    s = client_stats();
    assert_int_equal(s.published, 4);
    assert_int_equal(s.confirmed, 2);
    assert_int_equal(s.unconfirmed_failed, 2);
    assert_int_equal(s.republished, 0);
    assert_int_equal(s.recoveries, 1);
    close_gracefully();
}

/* HP_AMQP_REPUBLISH: nothing completes at the loss; after confirm.select
 * on the new connection the same frames go out again, in order; the new
 * channel's acks (from 1) complete them under the numbers the caller was
 * given; the next publish takes the next number. */
static void test_unconfirmed_republish(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = rcfg();
    cfg.unconfirmed = HP_AMQP_REPUBLISH;
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *c1 = open_channel();
    confirm(c1);
    publish_n(c1, 1, "one");
    publish_n(c1, 2, "two");
    publish_n(c1, 3, "three");
    wire_msg_t sent[3];
    for (int i = 0; i < 3; i++)
        sent[i] = read_publish(1);
    broker_ack(1, 1, false);
    assert_int_equal(T.nconf, 1);
    lose_tcp();
    assert_int_equal(T.nconf, 1);
    redial();
    broker_ok(1, HP_AMQP_CHANNEL_OPEN, HP_AMQP_CHANNEL_OPEN_OK);
    broker_expect_on(1, HP_AMQP_CONFIRM_SELECT);
    broker_expect_nothing(); /* nothing before select-ok */
    assert_int_equal(T.nconf, 1);
    broker_send_id(1, HP_AMQP_CONFIRM_SELECT_OK);
    assert_int_equal(T.recovered, 1);
    wire_msg_t again = read_publish(1);
    assert_same_msg(&again, &sent[1]);
    again = read_publish(1);
    assert_same_msg(&again, &sent[2]);
    broker_expect_nothing();
    hp_amqp_stats_t s = client_stats();
    assert_int_equal(s.republished, 2);
    assert_int_equal(s.published, 3);
    assert_int_equal(T.nconf, 1);
    /* The next publish: 4 for the caller, the broker's 3. */
    publish_n(c1, 4, "four");
    read_publish(1);
    broker_ack(1, 1, false);
    assert_int_equal(T.nconf, 2);
    assert_int_equal(T.conf[1].seq, 2);
    assert_int_equal(T.conf[1].status, HP_AMQP_ACKED);
    broker_ack(1, 3, true);
    assert_int_equal(T.nconf, 4);
    assert_int_equal(T.conf[2].seq, 3);
    assert_int_equal(T.conf[3].seq, 4);
    assert_each_once(4);
    s = client_stats();
    assert_int_equal(s.published, 4);
    assert_int_equal(s.confirmed, 4);
    assert_int_equal(s.unconfirmed_failed, 0);
    assert_int_equal(s.republished, 2);
    assert_int_equal(s.recoveries, 1);
    close_gracefully();
}

/* ---- 5. delivery tags across a recovery ---- */

static void test_delivery_tags(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = rcfg();
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *c1 = open_channel();
    consume(c1, "q", "ctag", 0, 7);
    deliver(1, "ctag", 1, "a");
    deliver(1, "ctag", 2, "b");
    assert_int_equal(T.ndlv, 2);
    uint64_t t = T.dlv[1].dtag;
    assert_int_equal(t, 2);
    lose_tcp();
    assert_int_equal(hp_amqp_ack(c1, t, false), -EAGAIN); /* while down */
    redial();
    broker_ok(1, HP_AMQP_CHANNEL_OPEN, HP_AMQP_CHANNEL_OPEN_OK);
    broker_expect_on(1, HP_AMQP_BASIC_CONSUME);
    send_consume_ok(1, "ctag");
    assert_int_equal(T.recovered, 1);
    /* A tag of the lost connection: dropped, nothing sent. */
    assert_int_equal(hp_amqp_ack(c1, t, false), 0);
    assert_int_equal(hp_amqp_ack(c1, 1, true), 0);
    assert_int_equal(hp_amqp_nack(c1, t, false, true), 0);
    assert_int_equal(hp_amqp_reject(c1, 1, true), 0);
    broker_expect_nothing();
    deliver(1, "ctag", 1, "c");
    assert_int_equal(T.ndlv, 3);
    assert_int_equal(T.dlv[2].tag, 7);
    uint64_t t2 = T.dlv[2].dtag;
    assert_true(t2 > t);
    deliver(1, "ctag", 2, "d");
    uint64_t t3 = T.dlv[3].dtag;
    assert_true(t3 > t2);
    assert_int_equal(hp_amqp_ack(c1, t2, false), 0);
    hp_amqp_method_t m = broker_expect_on(1, HP_AMQP_BASIC_ACK);
    assert_int_equal(m.basic_ack.delivery_tag, 1);
    assert_int_equal(hp_amqp_nack(c1, t3, false, false), 0);
    m = broker_expect_on(1, HP_AMQP_BASIC_NACK);
    assert_int_equal(m.basic_nack.delivery_tag, 2);
    close_gracefully();
}

/* ---- 6. giving up ---- */

/* recover_tries = 2 and nothing listening: two attempts, then CLOSED with
 * the last one's error. */
static void test_give_up_after_tries(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = rcfg();
    cfg.recover_tries = 2;
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *c1 = open_channel();
    (void)c1;
    close(B.lfd);
    B.lfd = -1;
    lose_tcp();
    tick(100); /* attempt 1: refused */
    pump_for(20);
    assert_int_equal(T.closed, 0);
    assert_int_equal(T.recovering, 1);
    tick(100); /* attempt 2: refused, the last */
    PUMP_UNTIL(T.closed == 1, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, -ECONNREFUSED);
    assert_int_equal(T.recovered, 0);
    assert_int_equal(T.recovering, 1);
}

/* A refusal in a recovery attempt's handshake that a new attempt would
 * meet again (403 on login, 530 on the vhost): CLOSED at once. */
static void refused_in_handshake(uint16_t code, bool at_open)
{
    hp_amqp_config_t cfg = rcfg();
    start_with(&cfg, 0, 0, 0);
    lose_tcp();
    tick(100);
    broker_accept_again();
    broker_expect_header();
    broker_send_start("PLAIN");
    broker_expect_on(0, HP_AMQP_CONNECTION_START_OK);
    if (at_open) {
        broker_send_tune(0, 0, 0);
        broker_expect_on(0, HP_AMQP_CONNECTION_TUNE_OK);
        broker_expect_on(0, HP_AMQP_CONNECTION_OPEN);
    }
    hp_amqp_method_t cl = {.id = HP_AMQP_CONNECTION_CLOSE};
    cl.connection_close.reply_code = code;
    cl.connection_close.reply_text = hp_amqp_str(code == 403 ? "ACCESS_REFUSED" : "NOT_ALLOWED");
    broker_send(0, &cl);
    broker_expect_on(0, HP_AMQP_CONNECTION_CLOSE_OK);
    PUMP_UNTIL(T.closed == 1, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, -EPROTO);
    assert_int_equal(T.closed_r.code, code);
    assert_int_equal(T.recovering, 1);
    tick(1000);
    assert_no_dial();
}

static void test_give_up_403(void **state)
{
    (void)state;
    refused_in_handshake(403, false);
}

static void test_give_up_530(void **state)
{
    (void)state;
    refused_in_handshake(530, true);
}

/* ---- 7. a recovery step refused ---- */

static void test_step_refused(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = rcfg();
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *c1 = open_channel();
    hp_amqp_channel_on_close(c1, on_chan_close, (void *)5);
    declare_queue(c1, "q1", "q1");
    lose_tcp();
    redial();
    replay(1, HP_AMQP_CHANNEL_OPEN);
    replay(1, HP_AMQP_QUEUE_DECLARE);
    broker_send_id(1, HP_AMQP_CHANNEL_OPEN_OK);
    hp_amqp_method_t cl = {.id = HP_AMQP_CHANNEL_CLOSE};
    cl.channel_close.reply_code = 406;
    cl.channel_close.reply_text = hp_amqp_str("PRECONDITION_FAILED - inequivalent arg 'durable'");
    cl.channel_close.class_id = 50;
    cl.channel_close.method_id = 10;
    broker_send(1, &cl);
    PUMP_UNTIL(T.closed == 1, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.recovered, 0);
    assert_int_equal(T.closed_r.err, -EPROTO);
    assert_int_equal(T.closed_r.code, 406);
    assert_int_equal(T.closed_r.class_id, 50);
    assert_int_equal(T.closed_r.method_id, 10);
    assert_true(strncmp(T.closed_r.text, "recovery failed", 15) == 0);
    assert_non_null(strstr(T.closed_r.text, "inequivalent arg"));
    tick(1000);
    assert_no_dial();
}

/* ---- 8. hp_amqp_close while recovering ---- */

/* In the backoff: CLOSED err 0, after the call returned; never dials. */
static void test_close_in_backoff(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = rcfg();
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *c1 = open_channel();
    hp_amqp_channel_on_close(c1, on_chan_close, (void *)5);
    lose_tcp();
    hp_amqp_close(T.conn);
    assert_int_equal(T.closed, 0); /* not inside the call */
    PUMP_UNTIL(T.closed == 1, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, 0);
    tick(1000);
    assert_no_dial();
}

/* The broker kills the connection (connection.close 320) while two
 * publishes wait for their confirms; the caller closes from the callback
 * that fails the second. CLOSED follows (err 0) and nothing is dialed: the
 * close used to be ignored, the broker's close having set CLOSING, and
 * the recovery went on, leaving a connection its caller had closed (an
 * amqp_tool that never exited, 1 run in 15 of test_amqp.py's kills). */
static void close_on_second(hp_amqp_channel_t *ch, uint64_t seq)
{
    (void)ch;
    if (seq == 2)
        hp_amqp_close(T.conn);
}

static void test_close_from_a_callback_of_the_loss(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = rcfg();
    cfg.unconfirmed = HP_AMQP_FAIL_UNCONFIRMED;
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *c1 = open_channel();
    confirm(c1);
    publish_n(c1, 1, "one");
    publish_n(c1, 2, "two");
    read_publish(1);
    read_publish(1);
    T.after_confirm = close_on_second;
    hp_amqp_method_t cl = {.id = HP_AMQP_CONNECTION_CLOSE};
    cl.connection_close.reply_code = 320;
    cl.connection_close.reply_text = hp_amqp_str("CONNECTION_FORCED - kill");
    broker_send(0, &cl);
    broker_expect_on(0, HP_AMQP_CONNECTION_CLOSE_OK);
    PUMP_UNTIL(T.closed == 1, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, 0);
    assert_int_equal(T.closed_r.code, 0);
    assert_int_equal(T.recovering, 0);
    assert_int_equal(T.nconf, 2);
    assert_int_equal(T.conf[0].status, -ECONNRESET);
    assert_int_equal(T.conf[1].status, -ECONNRESET);
    broker_expect_eof();
    tick(1000);
    assert_no_dial();
}

/* In the recovery's handshake: CLOSED err 0, the socket closed. */
static void test_close_in_recovery_handshake(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = rcfg();
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *c1 = open_channel();
    declare_queue(c1, "q1", "q1");
    lose_tcp();
    tick(100);
    broker_accept_again();
    broker_expect_header();
    broker_send_start("PLAIN");
    broker_expect_on(0, HP_AMQP_CONNECTION_START_OK);
    hp_amqp_close(T.conn);
    assert_int_equal(T.closed, 0);
    PUMP_UNTIL(T.closed == 1, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, 0);
    broker_expect_eof();
    tick(1000);
    assert_no_dial();
}

/* In the replay (READY on the wire, RECOVERED not yet): CLOSED err 0. */
static void test_close_in_replay(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = rcfg();
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *c1 = open_channel();
    declare_queue(c1, "q1", "q1");
    lose_tcp();
    redial();
    replay(1, HP_AMQP_CHANNEL_OPEN);
    replay(1, HP_AMQP_QUEUE_DECLARE);
    hp_amqp_close(T.conn);
    assert_int_equal(T.closed, 0);
    PUMP_UNTIL(T.closed == 1, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, 0);
    assert_int_equal(T.recovered, 0);
    tick(1000);
    assert_no_dial();
}

/* ---- a loss in the middle of a recovery ---- */

/* The broker drops the new connection during the replay: no second
 * RECOVERING, another attempt after the backoff, the whole replay again,
 * one RECOVERED and one recovery counted. */
static void test_loss_during_replay(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = rcfg();
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *c1 = open_channel();
    declare_queue(c1, "q1", "q1");
    consume(c1, "q1", "ctag", 0, 7);
    lose_tcp();
    redial();
    replay(1, HP_AMQP_CHANNEL_OPEN);
    replay(1, HP_AMQP_QUEUE_DECLARE);
    broker_send_id(1, HP_AMQP_CHANNEL_OPEN_OK);
    broker_close();
    pump_for(20);
    assert_int_equal(T.recovering, 1);
    assert_int_equal(T.closed, 0);
    assert_int_equal(T.recovered, 0);
    assert_no_dial();
    redial();
    replay(1, HP_AMQP_CHANNEL_OPEN);
    replay(1, HP_AMQP_QUEUE_DECLARE);
    broker_expect_nothing();
    broker_send_id(1, HP_AMQP_CHANNEL_OPEN_OK);
    send_declare_ok(1, "q1");
    hp_amqp_method_t m = replay(1, HP_AMQP_BASIC_CONSUME);
    assert_bytes(m.basic_consume.consumer_tag, "ctag");
    send_consume_ok(1, "ctag");
    assert_int_equal(T.recovered, 1);
    assert_int_equal(client_stats().recoveries, 1);
    deliver(1, "ctag", 1, "x");
    assert_int_equal(T.ndlv, 1);
    assert_int_equal(T.dlv[0].tag, 7);
    close_gracefully();
}

/* ---- 9. several addresses ---- */

/* A recovering config with two addresses (amqp_harness.h's two_brokers). */
static hp_amqp_config_t two_addresses(int *l2, char *list, size_t cap)
{
    hp_amqp_config_t cfg = rcfg();
    two_brokers(&cfg, l2, list, cap);
    return cfg;
}

/* The handshake of a recovery on whatever listener B has now, then the
 * replay of one channel with one queue: RECOVERED. */
static void recover_on_b(void)
{
    broker_accept();
    broker_expect_header();
    broker_login_to_open();
    broker_send_id(0, HP_AMQP_CONNECTION_OPEN_OK);
    broker_ok(1, HP_AMQP_CHANNEL_OPEN, HP_AMQP_CHANNEL_OPEN_OK);
    hp_amqp_method_t m = replay(1, HP_AMQP_QUEUE_DECLARE);
    assert_bytes(m.queue_declare.queue, "jobs");
    send_declare_ok(1, "jobs");
    assert_int_equal(T.recovered, 1);
}

/* Lost on the first address: the recovery dials the second (the lost
 * node is probably down), not the first, and declares the topology
 * there; hp_amqp_address says where it is. */
static void test_failover_next_address(void **state)
{
    (void)state;
    int l1, l2;
    char list[64];
    hp_amqp_config_t cfg = two_addresses(&l2, list, sizeof list);
    client_connect(&cfg);
    broker_handshake(0, 0, 0);
    l1 = B.lfd;
    B.lfd = -1;
    hp_amqp_channel_t *ch = open_channel();
    declare_queue(ch, "jobs", "jobs");
    lose_tcp();
    tick(100);
    broker_move(l2);
    recover_on_b();
    uint32_t index;
    hp_amqp_address(T.conn, &index);
    assert_int_equal(index, 1);
    int fd = accept4(l1, NULL, NULL, SOCK_NONBLOCK);
    if (fd >= 0)
        fail_msg("the lost address was dialed first");
    close(l1);
    close_gracefully();
}

/* After the loss the next address refuses: the one after it (here the
 * first again) is dialed at once, without a second backoff. */
static void test_failover_refused_moves_on(void **state)
{
    (void)state;
    int l2;
    char list[64];
    hp_amqp_config_t cfg = two_addresses(&l2, list, sizeof list);
    client_connect(&cfg);
    broker_handshake(0, 0, 0);
    close(l2); /* the second address refuses */
    hp_amqp_channel_t *ch = open_channel();
    declare_queue(ch, "jobs", "jobs");
    lose_tcp();
    tick(100); /* the round: the second refuses, the first answers */
    broker_close();
    B.rx = B.buf;
    B.len = 0;
    B.eof = false;
    recover_on_b();
    uint32_t index;
    hp_amqp_address(T.conn, &index);
    assert_int_equal(index, 0);
    close_gracefully();
}

/* recover_tries counts rounds, not addresses: with two addresses both
 * refusing and recover_tries 2, the first round (two refusals) does not
 * end it; the second does, CLOSED naming the last address tried. */
static void test_failover_tries_count_rounds(void **state)
{
    (void)state;
    int l2;
    char list[64];
    hp_amqp_config_t cfg = two_addresses(&l2, list, sizeof list);
    cfg.recover_tries = 2;
    client_connect(&cfg);
    broker_handshake(0, 0, 0);
    uint16_t p1 = B.port;
    close(l2);
    close(B.lfd);
    B.lfd = -1;
    lose_tcp();
    tick(100); /* round 1: both refuse */
    pump_for(50);
    assert_int_equal(T.closed, 0);
    assert_int_equal(T.recovering, 1);
    tick(200); /* round 2: the backoff doubled; both refuse, the last */
    PUMP_UNTIL(T.closed == 1, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, -ECONNREFUSED);
    assert_closed_at(p1);
}

/* Blocked longer than blocked_timeout_ms: RECOVERING with -ETIMEDOUT and
 * the reason, and the recovery goes to the next address. */
static void test_blocked_timeout_fails_over(void **state)
{
    (void)state;
    int l2;
    char list[64];
    hp_amqp_config_t cfg = two_addresses(&l2, list, sizeof list);
    cfg.blocked_timeout_ms = 1000;
    client_connect(&cfg);
    broker_handshake(0, 0, 0);
    hp_amqp_channel_t *ch = open_channel();
    declare_queue(ch, "jobs", "jobs");
    broker_send_id(0, HP_AMQP_CONNECTION_BLOCKED);
    tick(999);
    assert_int_equal(T.recovering, 0);
    tick(1);
    assert_int_equal(T.recovering, 1);
    assert_int_equal(T.recovering_r.err, -ETIMEDOUT);
    assert_string_equal(T.recovering_r.text, "blocked by the broker for longer than 1000 ms");
    assert_false(hp_amqp_blocked(T.conn));
    broker_expect_eof();
    int l1 = B.lfd;
    B.lfd = -1;
    tick(100);
    pump_for(20);
    int fd = accept4(l1, NULL, NULL, SOCK_NONBLOCK);
    if (fd >= 0)
        fail_msg("the blocked node was dialed again first");
    close(l1);
    broker_move(l2);
    recover_on_b();
    uint32_t index;
    hp_amqp_address(T.conn, &index);
    assert_int_equal(index, 1);
    assert_false(hp_amqp_blocked(T.conn));
    close_gracefully();
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    hp_log_set_level(getenv("TEST_RECOVER_LOG") ? HP_LOG_DEBUG : HP_LOG_ERROR);
    if (getenv("TEST_RECOVER_FILTER"))
        cmocka_set_test_filter(getenv("TEST_RECOVER_FILTER"));
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_replay_order),
        T_(test_connection_close_320),
        T_(test_server_named_queue),
        T_(test_deleted_not_replayed),
        T_(test_unconfirmed_fail),
        T_(test_unconfirmed_republish),
        T_(test_delivery_tags),
        T_(test_give_up_after_tries),
        T_(test_give_up_403),
        T_(test_give_up_530),
        T_(test_step_refused),
        T_(test_close_in_backoff),
        T_(test_close_from_a_callback_of_the_loss),
        T_(test_close_in_recovery_handshake),
        T_(test_close_in_replay),
        T_(test_loss_during_replay),
        T_(test_failover_next_address),
        T_(test_failover_refused_moves_on),
        T_(test_failover_tries_count_rounds),
        T_(test_blocked_timeout_fails_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
