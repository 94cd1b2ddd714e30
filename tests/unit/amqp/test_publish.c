/*
 * test_publish.c - unit tests for the publish queue of the AMQP client
 * (cfg.publish_queue_bytes, src/amqp/publish.c) against the scripted fake
 * broker (amqp_harness.h).
 *
 * With a queue, a publish that finds no room (the confirm window full,
 * the broker blocked, the output full, a recovery under way) is framed,
 * numbered and kept in its channel's FIFO instead of answering -EAGAIN;
 * each test makes room come one way and reads, on the broker's side, that
 * the queued messages go out in the order they were published, behind
 * nothing newer, each confirm callback running once under the number the
 * publish was given. A full queue answers -EAGAIN and takes nothing; a
 * channel or connection that goes fails what waits, each once. Every test
 * ends with as many heap blocks live as it started with (the queue's
 * frames and its ring included). test_fast_path is the loop the
 * instruction count per publish is measured on (docs/amqp.md).
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

/* The test configuration with a queue of `bytes`. */
static hp_amqp_config_t qcfg(uint64_t bytes)
{
    hp_amqp_config_t c = test_cfg();
    c.publish_queue_bytes = bytes;
    return c;
}

static hp_amqp_channel_t *confirm_channel(uint32_t window)
{
    hp_amqp_channel_t *ch = open_channel();
    uint16_t id = hp_amqp_channel_id(ch);
    assert_int_equal(hp_amqp_confirm_select(ch, window, on_done, (void *)50), 0);
    confirm_select_ok(id);
    return ch;
}

/* Publishes "m<want>" in confirm mode: it must be taken (sent or queued)
 * under number `want`, which on_confirm checks against its arg. */
static void pub(hp_amqp_channel_t *ch, uint64_t want)
{
    char body[32];
    int n = snprintf(body, sizeof body, "m%llu", (unsigned long long)want);
    publish_want(ch, NULL, "q", body, (size_t)n, want);
}

/* The next message the broker reads on `ch` must have body `want`
 * (method, header and one body frame). */
static void expect_body(uint16_t ch, const char *want)
{
    broker_expect_on(ch, HP_AMQP_BASIC_PUBLISH);
    hp_amqp_frame_t h = broker_frame();
    assert_int_equal(h.type, HP_AMQP_FRAME_HEADER);
    hp_amqp_frame_t b = broker_frame();
    assert_int_equal(b.type, HP_AMQP_FRAME_BODY);
    assert_int_equal(b.channel, ch);
    if (b.payload.len != strlen(want) || memcmp(b.payload.ptr, want, b.payload.len) != 0)
        fail_msg("expected \"%s\", the broker read \"%.*s\"", want, (int)b.payload.len,
                 (const char *)b.payload.ptr);
}

/* Messages m<from> .. m<to> arrive, in that order. */
static void expect_seqs(uint16_t ch, uint64_t from, uint64_t to)
{
    for (uint64_t s = from; s <= to; s++) {
        char want[32];
        snprintf(want, sizeof want, "m%llu", (unsigned long long)s);
        expect_body(ch, want);
    }
}

/* ---- the window ---- */

/* A window of 3 and a queue: publishes 4 .. 8 are taken (numbered at
 * once) but not sent; each ack sends as many as it frees slots, in
 * order; the confirms come under the numbers given; the queue's counters
 * go back to 0 and its memory is freed when it empties. */
static void test_window_full_queues(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = qcfg(1 << 20);
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *ch = confirm_channel(3);
    hp_amqp_on_writable(T.conn, on_writable, NULL);
    for (uint64_t s = 1; s <= 8; s++)
        pub(ch, s);
    expect_seqs(1, 1, 3);
    broker_expect_nothing();
    hp_amqp_stats_t st = client_stats();
    assert_int_equal(st.published, 3);
    assert_int_equal(st.queued, 5);
    assert_true(st.queued_bytes >= 5 * (sizeof(amqp_confirm_t) + 2 + 8 * 3));
    assert_int_equal(ch->q_len, 5);
    broker_ack(1, 1, false);
    expect_seqs(1, 4, 4);
    broker_expect_nothing();
    broker_ack(1, 3, true); /* 2 and 3: two slots */
    expect_seqs(1, 5, 6);
    broker_expect_nothing();
    assert_int_equal(client_stats().queued, 2);
    broker_ack(1, 6, true);
    expect_seqs(1, 7, 8);
    st = client_stats();
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.queued_bytes, 0);
    assert_int_equal(st.published, 8);
    assert_null(ch->queue); /* an empty queue holds no memory */
    broker_ack(1, 8, true);
    assert_int_equal(T.nconf, 8);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(T.conf[i].seq, (uint64_t)i + 1);
        assert_int_equal(T.conf[i].status, HP_AMQP_ACKED);
    }
    assert_each_once(8);
    assert_int_equal(T.writable, 0); /* nothing was refused */
    close_gracefully();
}

/* A queue of 600 bytes: publishes are taken until the next would not
 * fit (each counts its frames and 40 bytes; it is checked against what
 * its frames take at most, all properties present: 24 bytes more here);
 * the one refused answers -EAGAIN and takes nothing (no number, no
 * bytes); once an ack has sent the queue's head, on_writable runs, and
 * the next publish gets the next number and goes behind the queue. */
static void test_queue_full(void **state)
{
    (void)state;
    enum { BOUND = 600 };
    hp_amqp_config_t cfg = qcfg(BOUND);
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *ch = confirm_channel(1);
    hp_amqp_on_writable(T.conn, on_writable, NULL);
    pub(ch, 1);
    uint64_t taken = 1, per = 0;
    for (;;) {
        hp_amqp_stats_t before = client_stats();
        uint64_t seq = 77;
        hp_amqp_msg_t msg = {.routing_key = "q", .body = "mX", .len = 2};
        int r = hp_amqp_publish(ch, &msg, on_confirm, (void *)(uintptr_t)(taken + 1), &seq);
        if (r == -EAGAIN) {
            hp_amqp_stats_t after = client_stats();
            assert_int_equal(after.queued, before.queued);
            assert_int_equal(after.queued_bytes, before.queued_bytes);
            assert_int_equal(seq, 77);
            break;
        }
        assert_int_equal(r, 0);
        assert_int_equal(seq, ++taken);
        per = client_stats().queued_bytes / client_stats().queued;
        assert_true(taken < 100);
    }
    hp_amqp_stats_t st = client_stats();
    assert_int_equal(st.queued, taken - 1);
    assert_int_equal(per, sizeof(amqp_confirm_t) + 18 + 22 + 10); /* method, header, body */
    assert_true(st.queued_bytes <= BOUND);
    assert_true(st.queued_bytes + per + 24 > BOUND); /* refused only when full */
    expect_body(1, "m1");
    broker_expect_nothing();
    assert_int_equal(T.writable, 0);
    broker_ack(1, 1, false); /* the window's slot: 2 goes, the queue has room */
    expect_body(1, "mX");
    assert_int_equal(T.writable, 1);
    pub(ch, taken + 1); /* behind the rest of the queue */
    for (uint64_t s = 2; s < taken; s++) {
        broker_ack(1, s, false);
        expect_body(1, "mX");
    }
    broker_expect_nothing();
    broker_ack(1, taken, false);
    char last[32];
    snprintf(last, sizeof last, "m%llu", (unsigned long long)taken + 1);
    expect_body(1, last);
    broker_ack(1, taken + 1, false);
    assert_int_equal(T.nconf, (int)taken + 1);
    assert_each_once(taken + 1);
    close_gracefully();
}

/* ---- the broker blocks ---- */

static hp_amqp_channel_t *hook_ch;
static uint64_t hook_seq;

static void publish_in_event(hp_amqp_conn_t *c, int ev, const hp_amqp_result_t *r, void *arg)
{
    on_event(c, ev, r, arg);
    if ((ev == HP_AMQP_EV_UNBLOCKED || ev == HP_AMQP_EV_RECOVERED) && hook_ch)
        pub(hook_ch, hook_seq); /* room, but the queue is not empty: behind it */
}

/* A client connected with publish_in_event, READY. */
static void start_hooked(const hp_amqp_config_t *cfg)
{
    h_init(0);
    broker_listen();
    hp_amqp_config_t c = *cfg;
    c.port = B.port;
    assert_int_equal(hp_amqp_connect(&H.w, &c, publish_in_event, NULL, &T.conn), 0);
    broker_handshake(0, 0, 0);
}

/* Blocked: publishes, with and without confirms, wait in their channels'
 * queues (other calls still go); a publish from the UNBLOCKED event, when
 * there is room again, goes behind them, not around; then all are sent
 * in order and confirmed once each. */
static void test_blocked_queues(void **state)
{
    (void)state;
    hook_ch = NULL;
    hp_amqp_config_t cfg = qcfg(1 << 20);
    start_hooked(&cfg);
    hp_amqp_channel_t *ch = confirm_channel(0);
    hp_amqp_channel_t *plain = open_channel();
    uint16_t pid = hp_amqp_channel_id(plain);
    hp_amqp_method_t b = {.id = HP_AMQP_CONNECTION_BLOCKED};
    b.connection_blocked.reason = hp_amqp_str("low on memory");
    broker_send(0, &b);
    for (uint64_t s = 1; s <= 4; s++)
        pub(ch, s);
    hp_amqp_msg_t msg = {.routing_key = "q", .body = "plain", .len = 5};
    assert_int_equal(hp_amqp_publish(plain, &msg, NULL, NULL, NULL), 0);
    assert_int_equal(hp_amqp_qos(ch, 5, false, on_done, (void *)1), 0);
    broker_expect_on(1, HP_AMQP_BASIC_QOS); /* not a publish: not queued */
    broker_expect_nothing();
    assert_int_equal(client_stats().queued, 5);
    hook_ch = ch;
    hook_seq = 5;
    broker_send_id(0, HP_AMQP_CONNECTION_UNBLOCKED);
    hook_ch = NULL;
    expect_seqs(1, 1, 5);
    expect_body(pid, "plain");
    broker_expect_nothing();
    assert_int_equal(client_stats().queued, 0);
    assert_int_equal(client_stats().published, 6);
    broker_ack(1, 5, true);
    assert_int_equal(T.nconf, 5);
    assert_each_once(5);
    close_gracefully();
}

/* ---- a batch ---- */

static struct {
    int calls, tag;
    hp_amqp_batch_result_t r;
} BT;

static void on_batch(hp_amqp_channel_t *ch, const hp_amqp_batch_result_t *r, void *arg)
{
    (void)ch;
    BT.calls++;
    BT.tag = (int)(intptr_t)arg;
    BT.r = *r;
}

/* A batch that finds the window short of room is queued whole (its first
 * number given at once); one too large for what is left of the queue is
 * refused whole; the queued batch goes as acks free the window, and its
 * callback runs once, when all of it is confirmed. */
static void test_batch_queued_whole(void **state)
{
    (void)state;
    memset(&BT, 0, sizeof BT);
    hp_amqp_config_t cfg = qcfg(400); /* one batch of three, not two */
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *ch = confirm_channel(4);
    hp_amqp_msg_t msgs[3];
    char bodies[3][16];
    for (int i = 0; i < 3; i++) {
        snprintf(bodies[i], sizeof bodies[i], "b%d", i);
        msgs[i] = (hp_amqp_msg_t){.routing_key = "q", .body = bodies[i], .len = 2};
    }
    uint64_t first = 0;
    assert_int_equal(hp_amqp_publish_batch(ch, msgs, 3, on_batch, (void *)1, &first), 0);
    assert_int_equal(first, 1);
    assert_int_equal(hp_amqp_publish_batch(ch, msgs, 3, on_batch, (void *)2, &first), 0);
    assert_int_equal(first, 4); /* one slot free, three needed: queued */
    assert_int_equal(client_stats().queued, 3);
    first = 0;
    assert_int_equal(hp_amqp_publish_batch(ch, msgs, 3, on_batch, (void *)3, &first), -EAGAIN);
    assert_int_equal(first, 0);
    assert_int_equal(client_stats().queued, 3); /* nothing of the refused batch */
    for (int i = 0; i < 3; i++)
        expect_body(1, bodies[i]);
    broker_expect_nothing();
    broker_ack(1, 1, false); /* two slots: the queued batch starts going */
    expect_body(1, bodies[0]);
    expect_body(1, bodies[1]);
    broker_expect_nothing();
    broker_ack(1, 3, true);
    assert_int_equal(BT.calls, 1);
    assert_int_equal(BT.tag, 1);
    expect_body(1, bodies[2]);
    assert_int_equal(client_stats().queued, 0);
    broker_ack(1, 6, true);
    assert_int_equal(BT.calls, 2);
    assert_int_equal(BT.tag, 2);
    assert_int_equal(BT.r.first_seq, 4);
    assert_int_equal(BT.r.n, 3);
    assert_int_equal(BT.r.acked, 3);
    /* The next number is 7: the refused batch took none. */
    first = 0;
    assert_int_equal(hp_amqp_publish_batch(ch, msgs, 1, on_batch, (void *)4, &first), 0);
    assert_int_equal(first, 7);
    expect_body(1, bodies[0]);
    close_gracefully();
}

/* ---- the channel or the connection goes ---- */

/* The broker closes a channel with publishes in its window and its
 * queue: each fails once with the broker's reply, the window's first,
 * then the queue's in order, before on_close; the queue's memory is
 * back (teardown counts it). */
static void test_channel_closed_fails_queued(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = qcfg(1 << 20);
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *ch = confirm_channel(2);
    hp_amqp_channel_on_close(ch, on_chan_close, (void *)7);
    for (uint64_t s = 1; s <= 5; s++)
        pub(ch, s);
    expect_seqs(1, 1, 2);
    hp_amqp_method_t m = {.id = HP_AMQP_CHANNEL_CLOSE};
    m.channel_close.reply_code = 404;
    m.channel_close.reply_text = hp_amqp_str("NOT_FOUND - no exchange 'x'");
    broker_send(1, &m);
    broker_expect_on(1, HP_AMQP_CHANNEL_CLOSE_OK);
    assert_int_equal(T.nconf, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(T.conf[i].seq, (uint64_t)i + 1);
        assert_int_equal(T.conf[i].status, -EPROTO);
        assert_true(T.conf[i].order < T.on_close[0].seq);
    }
    assert_each_once(5);
    assert_int_equal(T.non_close, 1);
    hp_amqp_stats_t st = client_stats();
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.queued_bytes, 0);
    assert_int_equal(st.unconfirmed_failed, 5);
    broker_expect_nothing(); /* none of the queued was sent */
    close_gracefully();
}

/* A callback of a failing queued publish closes the connection: the rest
 * fail once each (-ECANCELED), nothing twice, nothing leaks. */
static void close_on_first_failure(hp_amqp_channel_t *ch, uint64_t seq)
{
    (void)ch;
    if (seq == 3 && T.conn)
        hp_amqp_close(T.conn);
}

static void test_close_inside_failure(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = qcfg(1 << 20);
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *ch = confirm_channel(2);
    for (uint64_t s = 1; s <= 6; s++)
        pub(ch, s);
    expect_seqs(1, 1, 2);
    T.after_confirm = close_on_first_failure;
    assert_int_equal(hp_amqp_channel_close(ch, on_done, (void *)9), 0);
    broker_expect_on(1, HP_AMQP_CHANNEL_CLOSE);
    broker_send_id(1, HP_AMQP_CHANNEL_CLOSE_OK);
    assert_int_equal(T.nconf, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(T.conf[i].status, -ECANCELED);
    assert_each_once(6);
    broker_expect_on(0, HP_AMQP_CONNECTION_CLOSE);
    broker_send_id(0, HP_AMQP_CONNECTION_CLOSE_OK);
    PUMP_UNTIL(T.closed == 1, 1000);
    assert_int_equal(T.closed, 1);
}

/* ---- the output is full ---- */

/* A broker that does not read and a burst of `size`-byte messages
 * without confirms: once the socket and the output chunk are full,
 * publishes wait in the queue up to its bound, then -EAGAIN; what the
 * client holds stays within the chunk, the queue's bound and one
 * message; once the broker reads, every message taken arrives, whole and
 * in order, and on_writable follows. */
static void output_full_queues(size_t size)
{
    B.rcvbuf = 16384;
    enum { BOUND = 64 * 1024 };
    hp_amqp_config_t cfg = qcfg(BOUND);
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *ch = open_channel();
    hp_amqp_on_writable(T.conn, on_writable, NULL);
    static uint8_t body[8192];
    assert_true(size <= sizeof body);
    int accepted = 0;
    uint64_t most = 0;
    while (publish_pattern(ch, body, size, (uint32_t)accepted)) {
        accepted++;
        hp_amqp_stats_t st = client_stats();
        uint64_t held = hp_conn_pending(T.conn->c) + st.queued_bytes;
        most = held > most ? held : most;
        assert_true(st.queued_bytes <= BOUND);
        assert_true(accepted < 100000);
    }
    hp_amqp_stats_t st = client_stats();
    assert_true(st.queued > 0);
    assert_true(st.queued_bytes + size + 100 > BOUND); /* refused only when full */
    if (most > H.cfg.wbuf_size + BOUND + size + 4096)
        fail_msg("%llu bytes held", (unsigned long long)most);
    assert_int_equal(T.writable, 0);
    broker_read_patterns(1, accepted, body, size);
    st = client_stats();
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.published, (uint64_t)accepted);
    close_gracefully();
}

static void test_output_full_queues(void **state)
{
    (void)state;
    output_full_queues(1000);
}

/* Messages larger than half the output chunk: they go from the queue in
 * buffers of their own, one at a time behind nothing. */
static void test_output_full_queues_large(void **state)
{
    (void)state;
    output_full_queues(3000);
}

/* ---- a lost connection ---- */

static hp_amqp_config_t rqcfg(uint8_t unconfirmed)
{
    hp_amqp_config_t c = qcfg(1 << 20);
    c.recover = true;
    c.recover_min_ms = c.recover_max_ms = 100;
    c.unconfirmed = unconfirmed;
    return c;
}

/* The client dials again after the backoff; the handshake, channel 1
 * opened again and confirm mode selected again. */
static void recover_channel_1(void)
{
    broker_redial_to_open(100);
    broker_send_id(0, HP_AMQP_CONNECTION_OPEN_OK);
    broker_ok(1, HP_AMQP_CHANNEL_OPEN, HP_AMQP_CHANNEL_OPEN_OK);
    confirm_select_ok(1);
    assert_int_equal(T.recovered, 1);
}

/* HP_AMQP_FAIL_UNCONFIRMED: at the loss, the window's and the queue's
 * publishes fail with -ECONNRESET, once each, in order; publishes made
 * while it recovers wait in the queue and go after RECOVERED. */
static void test_loss_fails_queued(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = rqcfg(HP_AMQP_FAIL_UNCONFIRMED);
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *ch = confirm_channel(2);
    for (uint64_t s = 1; s <= 4; s++)
        pub(ch, s);
    expect_seqs(1, 1, 2);
    broker_drop();
    assert_int_equal(T.nconf, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(T.conf[i].seq, (uint64_t)i + 1);
        assert_int_equal(T.conf[i].status, -ECONNRESET);
    }
    pub(ch, 5); /* recovering: waits */
    pub(ch, 6);
    assert_int_equal(client_stats().queued, 2);
    recover_channel_1();
    expect_seqs(1, 5, 6);
    broker_ack(1, 2, true); /* the new channel's 1 and 2 */
    assert_int_equal(T.nconf, 6);
    assert_int_equal(T.conf[4].seq, 5);
    assert_int_equal(T.conf[5].seq, 6);
    assert_int_equal(T.conf[5].status, HP_AMQP_ACKED);
    assert_each_once(6);
    close_gracefully();
}

/* HP_AMQP_REPUBLISH: nothing fails at the loss; after the recovery the
 * window's publishes go again first, then the queue's, then one made in
 * the RECOVERED event (behind the queue); all under their numbers. */
static void test_recovery_sends_queued(void **state)
{
    (void)state;
    hook_ch = NULL;
    hp_amqp_config_t cfg = rqcfg(HP_AMQP_REPUBLISH);
    start_hooked(&cfg);
    hp_amqp_channel_t *ch = confirm_channel(3);
    for (uint64_t s = 1; s <= 5; s++)
        pub(ch, s);
    expect_seqs(1, 1, 3);
    broker_ack(1, 1, false);
    expect_seqs(1, 4, 4);
    broker_drop();
    assert_int_equal(T.nconf, 1);
    pub(ch, 6);
    hook_ch = ch;
    hook_seq = 7;
    recover_channel_1();
    hook_ch = NULL;
    expect_seqs(1, 2, 4);    /* again, the window's: the new channel's 1 .. 3 */
    broker_expect_nothing(); /* the window is full */
    broker_ack(1, 3, true);
    expect_seqs(1, 5, 7);
    broker_ack(1, 6, true);
    assert_int_equal(T.nconf, 7);
    for (int i = 0; i < 7; i++) {
        assert_int_equal(T.conf[i].seq, (uint64_t)i + 1);
        assert_int_equal(T.conf[i].status, HP_AMQP_ACKED);
    }
    assert_each_once(7);
    close_gracefully();
}

/* ---- out of memory ---- */

/* Memory running out at each allocation in turn while a batch is
 * queued (the batch's record, the ring, each message's frames; a frames
 * buffer that cannot shrink is kept as it is): -ENOMEM, nothing taken, no
 * number spent, nothing leaked; past the last one the batch is queued
 * and goes. */
static void test_queue_out_of_memory(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = qcfg(1 << 20);
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *ch = confirm_channel(3);
    for (uint64_t s = 1; s <= 3; s++)
        pub(ch, s);
    hp_amqp_msg_t msgs[3] = {{.routing_key = "q", .body = "m4", .len = 2},
                             {.routing_key = "q", .body = "m5", .len = 2},
                             {.routing_key = "q", .body = "m6", .len = 2}};
    uint64_t k = 1, first = 0;
    for (;; k++) {
        hp_alloc_fail_after(k, 1);
        int r = hp_amqp_publish_batch(ch, msgs, 3, NULL, NULL, &first);
        hp_alloc_fail_after(0, 0);
        if (r == 0)
            break;
        assert_int_equal(r, -ENOMEM);
        assert_int_equal(client_stats().queued, 0);
        assert_null(ch->queue);
        assert_true(k < 20);
    }
    assert_int_equal(k, 8); /* the record, the ring, 3 x (frames, shrink): the last shrink */
    assert_int_equal(first, 4);
    assert_int_equal(client_stats().queued, 3);
    expect_seqs(1, 1, 3);
    broker_ack(1, 3, true);
    expect_seqs(1, 4, 6);
    broker_ack(1, 6, true);
    assert_int_equal(T.nconf, 3);
    assert_each_once(3);
    close_gracefully();
}

/* ---- the fast path ---- */

/* 2,000 small publishes with room (no queue configured, none needed):
 * the loop callgrind counts instructions per publish on
 * (--toggle-collect=hp_amqp_publish; see docs/amqp.md). */
static void test_fast_path(void **state)
{
    (void)state;
    H.cfg.wbuf_size = 65536;
    start();
    hp_amqp_channel_t *ch = confirm_channel(4096);
    hp_amqp_msg_t msg = {.exchange = "", .routing_key = "q", .body = "body", .len = 4};
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 40; i++)
            assert_int_equal(hp_amqp_publish(ch, &msg, NULL, NULL, NULL), 0);
        step(0);
        for (int i = 0; i < 40; i++)
            expect_body(1, "body");
        broker_ack(1, (uint64_t)(round + 1) * 40, true);
    }
    assert_int_equal(client_stats().published, 2000);
    close_gracefully();
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    hp_log_set_level(HP_LOG_ERROR);
    /* TEST_PUBLISH_FILTER=test_fast_path runs a subset. */
    if (getenv("TEST_PUBLISH_FILTER"))
        cmocka_set_test_filter(getenv("TEST_PUBLISH_FILTER"));
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_window_full_queues),
        T_(test_queue_full),
        T_(test_blocked_queues),
        T_(test_batch_queued_whole),
        T_(test_channel_closed_fails_queued),
        T_(test_close_inside_failure),
        T_(test_output_full_queues),
        T_(test_output_full_queues_large),
        T_(test_loss_fails_queued),
        T_(test_recovery_sends_queued),
        T_(test_queue_out_of_memory),
        T_(test_fast_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
