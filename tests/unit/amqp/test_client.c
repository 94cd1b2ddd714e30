/*
 * test_client.c - unit tests for the AMQP 0-9-1 client (src/amqp/client.c,
 * channel.c, publish.c, message.c) against a scripted fake broker (amqp_harness.h).
 *
 * The client runs on a bare worker on the test's own thread, on a manual
 * clock; the broker is a plain socket in the test, which reads the frames
 * the client sent and writes frames back. Each step of a conversation is
 * explicit, so each test reads as the exchange it checks: the handshake
 * and its failures, heartbeats, channels and their calls, publishing with
 * and without confirms (frames, batches, bursts from a timer, a broker
 * that does not read), consuming (messages in one frame, many, larger than
 * the read buffer, split at every byte), protocol errors and the close
 * handshakes, callbacks that close what called them, and allocation
 * failures. Every test ends with as many heap blocks live as it started
 * with; the sanitizer build (make SANITIZE=address,undefined) runs the same
 * tests under ASan and UBSan.
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

/* ---- the handshake ---- */

static bool table_bool(hp_amqp_bytes_t table, const char *key)
{
    hp_amqp_value_t v;
    if (hp_amqp_table_get(table, key, &v) != 0)
        fail_msg("no %s in the table", key);
    assert_int_equal(v.type, HP_AMQP_T_BOOL);
    return v.b;
}


/* A fresh worker dialing a fresh broker with the test configuration, up
 * to the protocol header the client sends first. */
static void connect_to_header(void)
{
    h_init(0);
    broker_listen();
    hp_amqp_config_t cfg = test_cfg(); /* names the broker's port */
    client_connect(&cfg);
    broker_accept();
    broker_expect_header();
}

/* The protocol header first; start-ok with PLAIN "\0user\0pass", the
 * client's properties and capabilities; tune-ok with the smaller values;
 * open with the vhost; READY only after open-ok. */
static void test_handshake(void **state)
{
    (void)state;
    h_init(0);
    broker_listen();
    hp_amqp_config_t cfg = test_cfg();
    cfg.vhost = "/prod";
    cfg.user = "user";
    cfg.password = "pass";
    cfg.name = "ctest-conn";
    cfg.channel_max = 100;
    cfg.heartbeat_s = 30;
    /* The configuration's strings are copied by the call. */
    char vhost[16];
    strcpy(vhost, cfg.vhost);
    cfg.vhost = vhost;
    client_connect(&cfg);
    memset(vhost, 'x', sizeof vhost - 1);

    broker_accept();
    broker_expect_header();
    broker_expect_nothing(); /* nothing before the broker's start */
    broker_send_start("AMQPLAIN PLAIN EXTERNAL");
    hp_amqp_method_t m = broker_expect_on(0, HP_AMQP_CONNECTION_START_OK);
    hp_amqp_connection_start_ok_t *so = &m.connection_start_ok;
    assert_int_equal(so->mechanism.len, 5);
    assert_memory_equal(so->mechanism.ptr, "PLAIN", 5);
    assert_int_equal(so->response.len, 10);
    assert_memory_equal(so->response.ptr, "\0user\0pass", 10);
    hp_amqp_bytes_t props = so->client_properties;
    assert_int_equal(hp_amqp_table_validate(props), 0);
    hp_amqp_value_t v;
    assert_int_equal(hp_amqp_table_get(props, "connection_name", &v), 0);
    assert_int_equal(v.type, HP_AMQP_T_STRING);
    assert_int_equal(v.bytes.len, strlen("ctest-conn"));
    assert_memory_equal(v.bytes.ptr, "ctest-conn", v.bytes.len);
    assert_int_equal(hp_amqp_table_get(props, "capabilities", &v), 0);
    assert_int_equal(v.type, HP_AMQP_T_TABLE);
    assert_true(table_bool(v.bytes, "publisher_confirms"));
    assert_true(table_bool(v.bytes, "consumer_cancel_notify"));
    assert_true(table_bool(v.bytes, "connection.blocked"));
    assert_true(table_bool(v.bytes, "authentication_failure_close"));
    assert_true(table_bool(v.bytes, "basic.nack"));
    assert_int_equal(T.ready, 0);

    broker_send_tune(2047, 131072, 60);
    hp_amqp_connection_tune_ok_t t = broker_expect_on(0, HP_AMQP_CONNECTION_TUNE_OK)
                                         .connection_tune_ok;
    assert_int_equal(t.channel_max, 100);
    assert_int_equal(t.frame_max, 4096); /* the read buffer's capacity */
    assert_int_equal(t.heartbeat, 30);
    hp_amqp_connection_open_t o = broker_expect_on(0, HP_AMQP_CONNECTION_OPEN).connection_open;
    assert_int_equal(o.virtual_host.len, 5);
    assert_memory_equal(o.virtual_host.ptr, "/prod", 5);
    broker_expect_nothing();
    assert_int_equal(T.ready, 0);

    broker_send_id(0, HP_AMQP_CONNECTION_OPEN_OK);
    assert_int_equal(T.ready, 1);
    assert_int_equal(hp_amqp_channel_max(T.conn), 100);
    assert_int_equal(hp_amqp_frame_max(T.conn), 4096);
    assert_int_equal(hp_amqp_heartbeat(T.conn), 30);
    assert_false(hp_amqp_blocked(T.conn));
    close_gracefully();
}

/* Negotiation: each value is the smaller of the two sides', 0 meaning no
 * limit on either side; frame_max is also capped by the read buffer, and
 * channel_max by HP_AMQP_MAX_CHANNELS; a client asking for no heartbeat
 * gets none. */
static void test_negotiation(void **state)
{
    (void)state;
    static const struct {
        uint32_t rbuf;
        uint16_t cfg_ch, br_ch, want_ch;
        uint32_t cfg_fm, br_fm, want_fm;
        uint16_t cfg_hb, br_hb, want_hb;
    } cases[] = {
        {4096, 0, 0, HP_AMQP_MAX_CHANNELS, 0, 0, 4096, 0, 0, 0},
        {4096, 0, 10, 10, 0, 131072, 4096, 0, 60, 0},
        {32768, 5, 10, 5, 8192, 0, 8192, 30, 60, 30},
        {32768, 10, 5, 5, 0, 16384, 16384, 60, 30, 30},
        {32768, 0, 0, HP_AMQP_MAX_CHANNELS, 65536, 131072, 32768, 30, 0, 30},
        {32768, 3000, 0, HP_AMQP_MAX_CHANNELS, 0, 0, 32768, 10, 10, 10},
        {65536, 0, 65535, HP_AMQP_MAX_CHANNELS, 20000, 10000, 10000, 1, 600, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (i > 0) {
            teardown(NULL);
            setup(NULL);
        }
        H.cfg.rbuf_size = cases[i].rbuf;
        h_init(0);
        broker_listen();
        hp_amqp_config_t cfg = test_cfg();
        cfg.channel_max = cases[i].cfg_ch;
        cfg.frame_max = cases[i].cfg_fm;
        cfg.heartbeat_s = cases[i].cfg_hb;
        client_connect(&cfg);
        broker_handshake(cases[i].br_ch, cases[i].br_fm, cases[i].br_hb);
        assert_int_equal(HS.tune_ok.channel_max, cases[i].want_ch);
        assert_int_equal(HS.tune_ok.frame_max, cases[i].want_fm);
        assert_int_equal(HS.tune_ok.heartbeat, cases[i].want_hb);
        assert_int_equal(hp_amqp_channel_max(T.conn), cases[i].want_ch);
        assert_int_equal(hp_amqp_frame_max(T.conn), cases[i].want_fm);
        assert_int_equal(hp_amqp_heartbeat(T.conn), cases[i].want_hb);
        close_gracefully();
    }
}

/* A broker without PLAIN: CLOSED with -EPROTONOSUPPORT, no start-ok. */
static void test_no_plain(void **state)
{
    (void)state;
    connect_to_header();
    broker_send_start("AMQPLAIN PLAINX EXTERNAL");
    PUMP_UNTIL(T.closed, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.ready, 0);
    assert_int_equal(T.closed_r.err, -EPROTONOSUPPORT);
    broker_expect_eof();
    assert_int_equal(B.len, 0); /* no start-ok */
}

/* A broker that answers our protocol header with its own (another
 * version): CLOSED with -EPROTONOSUPPORT. */
static void test_version_mismatch(void **state)
{
    (void)state;
    connect_to_header();
    broker_write("AMQP\0\0\x09\x01", 8);
    broker_close();
    PUMP_UNTIL(T.closed, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.ready, 0);
    assert_int_equal(T.closed_r.err, -EPROTONOSUPPORT);
}

/* Same, in two pieces, the broker keeping the connection open: the
 * answer comes from the 8 bytes, not from the connection's end. */
static void test_version_mismatch_split(void **state)
{
    (void)state;
    connect_to_header();
    broker_write("AMQP\0", 5);
    client_sync();
    assert_int_equal(T.closed, 0);
    broker_write("\0\x09\x01", 3);
    PUMP_UNTIL(T.closed, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, -EPROTONOSUPPORT);
    broker_expect_eof();
}

/* connection.close 403 in the handshake (a refused login): the client
 * answers close-ok and reports CLOSED with the code and the text. */
static void test_handshake_refused(void **state)
{
    (void)state;
    connect_to_header();
    broker_send_start("PLAIN");
    broker_expect(HP_AMQP_CONNECTION_START_OK);
    hp_amqp_method_t m = {.id = HP_AMQP_CONNECTION_CLOSE};
    m.connection_close.reply_code = 403;
    m.connection_close.reply_text = hp_amqp_str("ACCESS_REFUSED - Login was refused");
    m.connection_close.class_id = 10;
    m.connection_close.method_id = 11;
    broker_send(0, &m);
    broker_expect_on(0, HP_AMQP_CONNECTION_CLOSE_OK);
    broker_expect_eof();
    PUMP_UNTIL(T.closed, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.ready, 0);
    assert_int_equal(T.closed_r.err, -EPROTO);
    assert_int_equal(T.closed_r.code, 403);
    assert_int_equal(T.closed_r.class_id, 10);
    assert_int_equal(T.closed_r.method_id, 11);
    assert_string_equal(T.closed_r.text, "ACCESS_REFUSED - Login was refused");
}

/* A broker that accepts and says nothing: -ETIMEDOUT at connect_timeout_ms
 * on the loop's clock, not a millisecond before. */
static void test_handshake_timeout(void **state)
{
    (void)state;
    h_init(0);
    broker_listen();
    hp_amqp_config_t cfg = test_cfg();
    cfg.connect_timeout_ms = 5000;
    client_connect(&cfg);
    broker_accept();
    broker_expect_header();
    assert_closes_after(5000, -ETIMEDOUT);
    broker_expect_eof();
}

/* The deadline covers the whole handshake: a broker that stalls after
 * start-ok is timed out at the same deadline. */
static void test_handshake_timeout_after_start(void **state)
{
    (void)state;
    h_init(0);
    broker_listen();
    hp_amqp_config_t cfg = test_cfg();
    cfg.connect_timeout_ms = 5000;
    client_connect(&cfg);
    broker_accept();
    broker_expect_header();
    tick(3000);
    broker_send_start("PLAIN");
    broker_expect(HP_AMQP_CONNECTION_START_OK);
    assert_closes_after(2000, -ETIMEDOUT);
}

/* Nothing listening: CLOSED with -ECONNREFUSED. */
static void test_connection_refused(void **state)
{
    (void)state;
    h_init(0);
    broker_listen();
    close(B.lfd); /* the port is free again, and nobody listens on it */
    B.lfd = -1;
    hp_amqp_config_t cfg = test_cfg();
    int r = hp_amqp_connect(&H.w, &cfg, on_event, NULL, &T.conn);
    assert_int_equal(r, 0);
    PUMP_UNTIL(T.closed, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.ready, 0);
    assert_int_equal(T.closed_r.err, -ECONNREFUSED);
}

/* A bad configuration is refused at once, and nothing is left behind. */
static void test_connect_einval(void **state)
{
    (void)state;
    h_init(0);
    hp_amqp_config_t cfg = HP_AMQP_CONFIG_DEFAULT;
    hp_amqp_conn_t *c = NULL;
    cfg.frame_max = 1000;
    assert_int_equal(hp_amqp_connect(&H.w, &cfg, on_event, NULL, &c), -EINVAL);
    cfg = HP_AMQP_CONFIG_DEFAULT;
    cfg.vhost = NULL;
    assert_int_equal(hp_amqp_connect(&H.w, &cfg, on_event, NULL, &c), -EINVAL);
    char user[300];
    memset(user, 'u', sizeof user - 1);
    user[sizeof user - 1] = '\0';
    cfg = HP_AMQP_CONFIG_DEFAULT;
    cfg.user = user;
    assert_int_equal(hp_amqp_connect(&H.w, &cfg, on_event, NULL, &c), -EINVAL);
    assert_null(c);
    assert_int_equal(H.w.nconns, 0);
}

/* The broker's start says another version, or its tune a frame_max below
 * the spec's minimum, or it sends connection.secure (PLAIN has no
 * challenge): CLOSED with the reason, never READY. */
static void test_handshake_other_failures(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        if (round) {
            teardown(NULL);
            setup(NULL);
        }
        h_init(0);
        broker_listen();
        hp_amqp_config_t cfg = test_cfg();
        client_connect(&cfg);
        broker_accept();
        broker_expect_header();
        if (round == 0) {
            hp_amqp_method_t m = {.id = HP_AMQP_CONNECTION_START};
            m.connection_start.version_major = 0;
            m.connection_start.version_minor = 8;
            m.connection_start.mechanisms = hp_amqp_str("PLAIN");
            m.connection_start.locales = hp_amqp_str("en_US");
            broker_send(0, &m);
        } else {
            broker_send_start("PLAIN");
            broker_expect(HP_AMQP_CONNECTION_START_OK);
            if (round == 1) {
                broker_send_tune(0, 1024, 0);
            } else {
                hp_amqp_method_t m = {.id = HP_AMQP_CONNECTION_SECURE};
                m.connection_secure.challenge = hp_amqp_str("?");
                broker_send(0, &m);
                m = broker_expect_on(0, HP_AMQP_CONNECTION_CLOSE);
                assert_int_equal(m.connection_close.reply_code, HP_AMQP_NOT_IMPLEMENTED);
                broker_send_id(0, HP_AMQP_CONNECTION_CLOSE_OK);
            }
        }
        PUMP_UNTIL(T.closed, 1000);
        assert_int_equal(T.closed, 1);
        assert_int_equal(T.ready, 0);
        static const int want[] = {-EPROTONOSUPPORT, -EINVAL, -EPROTO};
        assert_int_equal(T.closed_r.err, want[round]);
        broker_expect_eof();
    }
}

/* The longest credentials and connection name hp_amqp_connect accepts
 * (255 bytes each): start-ok is larger than a kilobyte, which the spec
 * allows before tune (frames up to 4096 bytes). */
static void test_handshake_long_credentials(void **state)
{
    (void)state;
    h_init(0);
    broker_listen();
    static char user[256], pass[256], name[257];
    memset(user, 'u', 255);
    memset(pass, 'p', 255);
    memset(name, 'n', 256);
    hp_amqp_config_t cfg = test_cfg();
    cfg.user = user;
    cfg.password = pass;
    cfg.name = name;
    /* A name is a shortstr's worth at most: 256 bytes are refused at once. */
    hp_amqp_conn_t *c = NULL;
    assert_int_equal(hp_amqp_connect(&H.w, &cfg, on_event, NULL, &c), -EINVAL);
    assert_null(c);
    name[255] = '\0';
    client_connect(&cfg);
    broker_handshake(0, 0, 0);
    hp_amqp_bytes_t resp = HS.start_ok.response;
    assert_int_equal(resp.len, 2 + 255 + 255);
    const uint8_t *r = resp.ptr;
    assert_int_equal(r[0], 0);
    assert_memory_equal(r + 1, user, 255);
    assert_int_equal(r[256], 0);
    assert_memory_equal(r + 257, pass, 255);
    close_gracefully();
}

/* hp_amqp_close while the TCP connect is still under way: CLOSED with
 * err 0, once, not inside the call, and nothing left. */
static void test_close_while_dialing(void **state)
{
    (void)state;
    h_init(0);
    broker_listen();
    hp_amqp_config_t cfg = test_cfg();
    client_connect(&cfg);
    hp_amqp_close(T.conn);
    assert_int_equal(T.closed, 0); /* completions never run inside the call */
    hp_amqp_close(T.conn);         /* a second call does nothing */
    PUMP_UNTIL(T.closed, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, 0);
    pump_for(20);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.ready, 0);
}

/* ---- heartbeats, on the manual clock ---- */

static void start_heartbeat(uint16_t seconds)
{
    hp_amqp_config_t cfg = test_cfg();
    cfg.heartbeat_s = seconds;
    start_with(&cfg, 0, 0, seconds);
    assert_int_equal(hp_amqp_heartbeat(T.conn), seconds);
}

static void broker_expect_heartbeat(void)
{
    hp_amqp_frame_t f = broker_frame();
    assert_int_equal(f.type, HP_AMQP_FRAME_HEARTBEAT);
    assert_int_equal(f.channel, 0);
    assert_int_equal(f.payload.len, 0);
}

/* A client that has sent nothing for heartbeat/2 sends a heartbeat; a
 * broker silent for two intervals is gone: CLOSED with -ETIMEDOUT, and
 * not a millisecond sooner. */
static void test_heartbeat_sent_and_broker_timeout(void **state)
{
    (void)state;
    start_heartbeat(10);
    tick(4999);
    broker_expect_nothing();
    tick(1);
    broker_expect_heartbeat();
    broker_expect_nothing();
    tick(5000);
    broker_expect_heartbeat();
    tick(5000);
    broker_expect_heartbeat();
    tick(4999); /* 19.999 s without a byte from the broker */
    broker_expect_nothing();
    assert_int_equal(T.closed, 0);
    tick(1);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, -ETIMEDOUT);
    broker_expect_eof();
}

/* The broker's heartbeats (any traffic) keep the connection alive, for
 * as long as they come; the client's own output defers its heartbeat. */
static void test_heartbeat_broker_traffic_keeps_alive(void **state)
{
    (void)state;
    start_heartbeat(10);
    for (int i = 0; i < 12; i++) { /* one minute */
        tick(5000);
        broker_expect_heartbeat();
        broker_heartbeat();
    }
    assert_int_equal(T.closed, 0);
    /* Output of its own: no heartbeat while the client is not silent. */
    tick(3000);
    hp_amqp_channel_t *ch;
    assert_int_equal(hp_amqp_channel_open(T.conn, on_done, NULL, &ch), 0);
    broker_expect(HP_AMQP_CHANNEL_OPEN);
    broker_send_id(hp_amqp_channel_id(ch), HP_AMQP_CHANNEL_OPEN_OK);
    tick(2000); /* the timer: 2 s of silence only */
    broker_expect_nothing();
    tick(5000); /* 7 s: now */
    broker_expect_heartbeat();
    broker_heartbeat();
    /* The broker falls silent: 20 s later it is gone. */
    for (int i = 0; i < 3; i++) {
        tick(5000);
        broker_expect_heartbeat();
    }
    assert_closes_after(5000, -ETIMEDOUT);
}

/* The broker's bytes that wait unread when the timer fires (timers run
 * before reads, and the loop was held past two intervals) say it is
 * alive: no false "missed heartbeats". A broker silent for real still
 * goes. */
static void test_heartbeat_unread_bytes_are_traffic(void **state)
{
    (void)state;
    start_heartbeat(10);
    tick(5000);
    broker_expect_heartbeat();
    uint8_t hb[HP_AMQP_FRAME_OVERHEAD];
    hp_amqp_wr_t w = hp_amqp_wr(hb, sizeof hb);
    hp_amqp_frame_heartbeat(&w);
    broker_write(hb, w.len); /* in the client's socket, not read yet */
    tick(30000);             /* one iteration: the timer first */
    assert_int_equal(T.closed, 0);
    broker_expect_heartbeat();
    tick(20000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, -ETIMEDOUT);
}

/* Without heartbeats nothing is sent and nothing times out. */
static void test_no_heartbeat(void **state)
{
    (void)state;
    start_heartbeat(0);
    tick(600000);
    broker_expect_nothing();
    assert_int_equal(T.closed, 0);
    close_gracefully();
}

/* ---- channels ---- */

static hp_amqp_bytes_t make_args(uint8_t *buf, uint32_t cap)
{
    hp_amqp_table_builder_t b;
    hp_amqp_table_init(&b, buf, cap);
    hp_amqp_table_add_int(&b, "x-max-length", 1000);
    hp_amqp_table_add_str(&b, "x-queue-type", "quorum");
    hp_amqp_bytes_t args;
    assert_int_equal(hp_amqp_table_finish(&b, &args), 0);
    return args;
}

/* Calls made before open-ok go out at once, in order, and complete in
 * order with what their replies carry. */
static void test_calls_before_open_ok(void **state)
{
    (void)state;
    start();
    uint8_t abuf[128];
    hp_amqp_bytes_t args = make_args(abuf, sizeof abuf);
    hp_amqp_channel_t *ch;
    assert_int_equal(hp_amqp_channel_open(T.conn, on_done, (void *)0, &ch), 0);
    uint16_t id = hp_amqp_channel_id(ch);
    assert_int_equal(id, 1);
    assert_ptr_equal(hp_amqp_channel_conn(ch), T.conn);
    assert_int_equal(hp_amqp_exchange_declare(ch, "ex", "topic", HP_AMQP_DURABLE, args, on_done,
                                              (void *)1),
                     0);
    assert_int_equal(hp_amqp_queue_declare(ch, "jobs", HP_AMQP_DURABLE | HP_AMQP_EXCLUSIVE, args,
                                           on_done, (void *)2),
                     0);
    assert_int_equal(hp_amqp_queue_declare(ch, NULL, HP_AMQP_AUTO_DELETE, HP_AMQP_NO_ARGS,
                                           on_done, (void *)3),
                     0);
    assert_int_equal(hp_amqp_queue_bind(ch, "jobs", "ex", "a.#", HP_AMQP_NO_ARGS, on_done,
                                        (void *)4),
                     0);
    assert_int_equal(hp_amqp_queue_purge(ch, "jobs", on_done, (void *)5), 0);
    assert_int_equal(hp_amqp_queue_delete(ch, "jobs", HP_AMQP_IF_EMPTY, on_done, (void *)6), 0);
    assert_int_equal(hp_amqp_qos(ch, 10, false, on_done, (void *)7), 0);
    assert_int_equal(hp_amqp_queue_unbind(ch, "jobs", "ex", "a.#", HP_AMQP_NO_ARGS, on_done,
                                          (void *)8),
                     0);
    assert_int_equal(hp_amqp_exchange_delete(ch, "ex", HP_AMQP_IF_UNUSED, on_done, (void *)9),
                     0);

    /* All of them are on the wire before the broker answers anything. */
    broker_expect_on(id, HP_AMQP_CHANNEL_OPEN);
    hp_amqp_method_t m = broker_expect_on(id, HP_AMQP_EXCHANGE_DECLARE);
    assert_int_equal(m.exchange_declare.exchange.len, 2);
    assert_memory_equal(m.exchange_declare.type.ptr, "topic", 5);
    assert_true(m.exchange_declare.durable);
    assert_false(m.exchange_declare.passive || m.exchange_declare.auto_delete ||
                 m.exchange_declare.internal || m.exchange_declare.no_wait);
    assert_int_equal(m.exchange_declare.arguments.len, args.len);
    assert_memory_equal(m.exchange_declare.arguments.ptr, args.ptr, args.len);
    m = broker_expect_on(id, HP_AMQP_QUEUE_DECLARE);
    assert_int_equal(m.queue_declare.queue.len, 4);
    assert_memory_equal(m.queue_declare.queue.ptr, "jobs", 4);
    assert_true(m.queue_declare.durable && m.queue_declare.exclusive);
    assert_false(m.queue_declare.passive || m.queue_declare.auto_delete ||
                 m.queue_declare.no_wait);
    assert_int_equal(m.queue_declare.arguments.len, args.len);
    m = broker_expect_on(id, HP_AMQP_QUEUE_DECLARE);
    assert_int_equal(m.queue_declare.queue.len, 0);
    assert_true(m.queue_declare.auto_delete);
    assert_false(m.queue_declare.durable);
    m = broker_expect_on(id, HP_AMQP_QUEUE_BIND);
    assert_memory_equal(m.queue_bind.routing_key.ptr, "a.#", 3);
    assert_memory_equal(m.queue_bind.exchange.ptr, "ex", 2);
    broker_expect_on(id, HP_AMQP_QUEUE_PURGE);
    m = broker_expect_on(id, HP_AMQP_QUEUE_DELETE);
    assert_true(m.queue_delete.if_empty);
    assert_false(m.queue_delete.if_unused);
    m = broker_expect_on(id, HP_AMQP_BASIC_QOS);
    assert_int_equal(m.basic_qos.prefetch_count, 10);
    assert_false(m.basic_qos.global);
    broker_expect_on(id, HP_AMQP_QUEUE_UNBIND);
    m = broker_expect_on(id, HP_AMQP_EXCHANGE_DELETE);
    assert_true(m.exchange_delete.if_unused);
    assert_int_equal(T.nres, 0);

    broker_send_id(id, HP_AMQP_CHANNEL_OPEN_OK);
    broker_send_id(id, HP_AMQP_EXCHANGE_DECLARE_OK);
    hp_amqp_method_t ok = {.id = HP_AMQP_QUEUE_DECLARE_OK};
    ok.queue_declare_ok.queue = hp_amqp_str("jobs");
    ok.queue_declare_ok.message_count = 5;
    ok.queue_declare_ok.consumer_count = 2;
    broker_send(id, &ok);
    ok.queue_declare_ok.queue = hp_amqp_str("amq.gen-JzTY20BRgKO");
    ok.queue_declare_ok.message_count = 0;
    ok.queue_declare_ok.consumer_count = 0;
    broker_send(id, &ok);
    broker_send_id(id, HP_AMQP_QUEUE_BIND_OK);
    ok = (hp_amqp_method_t){.id = HP_AMQP_QUEUE_PURGE_OK};
    ok.queue_purge_ok.message_count = 7;
    broker_send(id, &ok);
    ok = (hp_amqp_method_t){.id = HP_AMQP_QUEUE_DELETE_OK};
    ok.queue_delete_ok.message_count = 9;
    broker_send(id, &ok);
    broker_send_id(id, HP_AMQP_BASIC_QOS_OK);
    broker_send_id(id, HP_AMQP_QUEUE_UNBIND_OK);
    broker_send_id(id, HP_AMQP_EXCHANGE_DELETE_OK);

    assert_int_equal(T.nres, 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(T.res[i].tag, i);
        assert_int_equal(T.res[i].err, 0);
        assert_false(T.res[i].ch_null);
        if (i)
            assert_true(T.res[i].seq > T.res[i - 1].seq);
    }
    assert_string_equal(T.res[2].queue, "jobs");
    assert_int_equal(T.res[2].messages, 5);
    assert_int_equal(T.res[2].consumers, 2);
    assert_string_equal(T.res[3].queue, "amq.gen-JzTY20BRgKO");
    assert_int_equal(T.res[3].messages, 0);
    assert_int_equal(T.res[5].messages, 7);
    assert_int_equal(T.res[6].messages, 9);
    broker_expect_nothing();
    close_gracefully();
}

/* The broker closes a channel (a publish to an exchange that does not
 * exist): the calls pending on it fail with -EPROTO and the broker's code
 * and text, then on_close runs; the client answers channel.close-ok; the
 * connection and its other channels go on. */
static void test_channel_closed_by_broker(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_channel();
    hp_amqp_channel_t *other = open_channel();
    uint16_t id = hp_amqp_channel_id(ch);
    hp_amqp_channel_on_close(ch, on_chan_close, (void *)77);
    hp_amqp_msg_t msg = {.exchange = "nope", .routing_key = "k", .body = "x", .len = 1};
    assert_int_equal(hp_amqp_publish(ch, &msg, NULL, NULL, NULL), 0);
    assert_int_equal(hp_amqp_queue_declare(ch, "a", 0, HP_AMQP_NO_ARGS, on_done, (void *)1), 0);
    assert_int_equal(hp_amqp_queue_declare(ch, "b", 0, HP_AMQP_NO_ARGS, on_done, (void *)2), 0);
    broker_expect_on(id, HP_AMQP_BASIC_PUBLISH);
    assert_int_equal(broker_frame().type, HP_AMQP_FRAME_HEADER);
    assert_int_equal(broker_frame().type, HP_AMQP_FRAME_BODY);
    broker_expect_on(id, HP_AMQP_QUEUE_DECLARE);
    broker_expect_on(id, HP_AMQP_QUEUE_DECLARE);
    int base = T.nres;
    hp_amqp_method_t cl = {.id = HP_AMQP_CHANNEL_CLOSE};
    cl.channel_close.reply_code = 404;
    cl.channel_close.reply_text = hp_amqp_str("NOT_FOUND - no exchange 'nope' in vhost '/'");
    cl.channel_close.class_id = 60;
    cl.channel_close.method_id = 40;
    broker_send(id, &cl);
    broker_expect_on(id, HP_AMQP_CHANNEL_CLOSE_OK);
    assert_int_equal(T.nres, base + 2);
    for (int i = 0; i < 2; i++) {
        res_t *r = &T.res[base + i];
        assert_int_equal(r->tag, i + 1);
        assert_int_equal(r->err, -EPROTO);
        assert_int_equal(r->code, 404);
        assert_int_equal(r->class_id, 60);
        assert_int_equal(r->method_id, 40);
        assert_string_equal(r->text, "NOT_FOUND - no exchange 'nope' in vhost '/'");
    }
    assert_int_equal(T.non_close, 1);
    assert_int_equal(T.on_close[0].tag, 77);
    assert_int_equal(T.on_close[0].code, 404);
    assert_int_equal(T.on_close[0].err, -EPROTO);
    assert_true(T.on_close[0].seq > T.res[base + 1].seq); /* after the calls */
    /* The other channel still works. */
    assert_int_equal(hp_amqp_qos(other, 1, false, on_done, (void *)3), 0);
    broker_expect_on(hp_amqp_channel_id(other), HP_AMQP_BASIC_QOS);
    broker_send_id(hp_amqp_channel_id(other), HP_AMQP_BASIC_QOS_OK);
    assert_int_equal(T.res[T.nres - 1].tag, 3);
    assert_int_equal(T.res[T.nres - 1].err, 0);
    assert_int_equal(T.closed, 0);
    close_gracefully();
}

/* hp_amqp_channel_close: channel.close goes out, the pending calls fail
 * with -ECANCELED at once, replies still in flight are dropped, and the
 * close completes on close-ok. */
static void test_channel_close_by_client(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_channel();
    uint16_t id = hp_amqp_channel_id(ch);
    assert_int_equal(hp_amqp_queue_declare(ch, "a", 0, HP_AMQP_NO_ARGS, on_done, (void *)1), 0);
    assert_int_equal(hp_amqp_queue_purge(ch, "a", on_done, (void *)2), 0);
    int base = T.nres;
    assert_int_equal(hp_amqp_channel_close(ch, on_done, (void *)9), 0);
    assert_int_equal(T.nres, base + 2);
    assert_int_equal(T.res[base].tag, 1);
    assert_int_equal(T.res[base].err, -ECANCELED);
    assert_int_equal(T.res[base + 1].tag, 2);
    assert_int_equal(T.res[base + 1].err, -ECANCELED);
    /* A closing channel takes no more calls. */
    assert_int_equal(hp_amqp_queue_purge(ch, "a", on_done, (void *)3), -ENOTCONN);
    assert_int_equal(hp_amqp_ack(ch, 1, false), -ENOTCONN);
    assert_int_equal(hp_amqp_channel_close(ch, on_done, (void *)4), -ENOTCONN);
    hp_amqp_msg_t msg = {.routing_key = "k", .body = "x", .len = 1};
    assert_int_equal(hp_amqp_publish(ch, &msg, NULL, NULL, NULL), -ENOTCONN);
    broker_expect_on(id, HP_AMQP_QUEUE_DECLARE);
    broker_expect_on(id, HP_AMQP_QUEUE_PURGE);
    hp_amqp_method_t cl = broker_expect_on(id, HP_AMQP_CHANNEL_CLOSE);
    assert_int_equal(cl.channel_close.reply_code, 200);
    broker_expect_nothing();
    /* The replies the broker had sent before it saw the close. */
    hp_amqp_method_t ok = {.id = HP_AMQP_QUEUE_DECLARE_OK};
    ok.queue_declare_ok.queue = hp_amqp_str("a");
    broker_send(id, &ok);
    broker_send_id(id, HP_AMQP_QUEUE_PURGE_OK);
    assert_int_equal(T.nres, base + 2);
    assert_int_equal(T.closed, 0);
    broker_send_id(id, HP_AMQP_CHANNEL_CLOSE_OK);
    assert_int_equal(T.nres, base + 3);
    assert_int_equal(T.res[base + 2].tag, 9);
    assert_int_equal(T.res[base + 2].err, 0);
    assert_int_equal(T.closed, 0);
    close_gracefully();
}

/* Channel numbers: 1 .. channel_max, -EMFILE beyond, a number free again
 * once its channel has closed; -ENOTCONN before READY. */
static void test_channel_numbers(void **state)
{
    (void)state;
    h_init(0);
    broker_listen();
    hp_amqp_config_t cfg = test_cfg();
    client_connect(&cfg);
    hp_amqp_channel_t *ch;
    assert_int_equal(hp_amqp_channel_open(T.conn, on_done, NULL, &ch), -ENOTCONN);
    broker_handshake(3, 0, 0);
    hp_amqp_channel_t *c1 = open_channel();
    hp_amqp_channel_t *c2 = open_channel();
    hp_amqp_channel_t *c3 = open_channel();
    assert_int_equal(hp_amqp_channel_id(c1), 1);
    assert_int_equal(hp_amqp_channel_id(c2), 2);
    assert_int_equal(hp_amqp_channel_id(c3), 3);
    assert_int_equal(hp_amqp_channel_open(T.conn, on_done, NULL, &ch), -EMFILE);
    /* Closing is not closed: the number is still taken. */
    assert_int_equal(hp_amqp_channel_close(c2, on_done, (void *)2), 0);
    broker_expect_on(2, HP_AMQP_CHANNEL_CLOSE);
    assert_int_equal(hp_amqp_channel_open(T.conn, on_done, NULL, &ch), -EMFILE);
    broker_send_id(2, HP_AMQP_CHANNEL_CLOSE_OK);
    hp_amqp_channel_t *c4 = open_channel();
    assert_int_equal(hp_amqp_channel_id(c4), 2);
    assert_int_equal(hp_amqp_channel_open(T.conn, on_done, NULL, &ch), -EMFILE);
    /* A channel the broker closed frees its number too. */
    hp_amqp_method_t cl = {.id = HP_AMQP_CHANNEL_CLOSE};
    cl.channel_close.reply_code = 406;
    cl.channel_close.reply_text = hp_amqp_str("PRECONDITION_FAILED");
    broker_send(1, &cl);
    broker_expect_on(1, HP_AMQP_CHANNEL_CLOSE_OK);
    hp_amqp_channel_t *c5 = open_channel();
    assert_int_equal(hp_amqp_channel_id(c5), 1);
    close_gracefully();
}

/* The broker refuses channel.open itself: the open completes with the
 * error and a NULL channel. */
static void test_channel_open_refused(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch;
    assert_int_equal(hp_amqp_channel_open(T.conn, on_done, (void *)5, &ch), 0);
    hp_amqp_channel_on_close(ch, on_chan_close, (void *)6);
    broker_expect_on(1, HP_AMQP_CHANNEL_OPEN);
    hp_amqp_method_t cl = {.id = HP_AMQP_CHANNEL_CLOSE};
    cl.channel_close.reply_code = 530;
    cl.channel_close.reply_text = hp_amqp_str("NOT_ALLOWED");
    cl.channel_close.class_id = 20;
    cl.channel_close.method_id = 10;
    broker_send(1, &cl);
    broker_expect_on(1, HP_AMQP_CHANNEL_CLOSE_OK);
    assert_int_equal(T.nres, 1);
    assert_int_equal(T.res[0].tag, 5);
    assert_true(T.res[0].ch_null);
    assert_int_equal(T.res[0].err, -EPROTO);
    assert_int_equal(T.res[0].code, 530);
    close_gracefully();
}

/* channel.flow from the broker is answered with flow-ok and the same
 * flag. */
static void test_channel_flow(void **state)
{
    (void)state;
    start();
    open_channel();
    for (int active = 0; active < 2; active++) {
        hp_amqp_method_t m = {.id = HP_AMQP_CHANNEL_FLOW};
        m.channel_flow.active = active;
        broker_send(1, &m);
        hp_amqp_method_t ok = broker_expect_on(1, HP_AMQP_CHANNEL_FLOW_OK);
        assert_int_equal(ok.channel_flow_ok.active, active);
    }
    assert_int_equal(T.closed, 0);
    close_gracefully();
}

/* A channel closed before its open-ok: the open fails with -ECANCELED (a
 * NULL channel), the open-ok in flight is dropped, close-ok completes the
 * close. */
static void test_channel_close_while_opening(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch;
    assert_int_equal(hp_amqp_channel_open(T.conn, on_done, (void *)1, &ch), 0);
    assert_int_equal(hp_amqp_channel_close(ch, on_done, (void *)2), 0);
    assert_int_equal(T.nres, 1);
    assert_int_equal(T.res[0].tag, 1);
    assert_true(T.res[0].ch_null);
    assert_int_equal(T.res[0].err, -ECANCELED);
    broker_expect_on(1, HP_AMQP_CHANNEL_OPEN);
    broker_expect_on(1, HP_AMQP_CHANNEL_CLOSE);
    broker_send_id(1, HP_AMQP_CHANNEL_OPEN_OK);
    assert_int_equal(T.nres, 1);
    broker_send_id(1, HP_AMQP_CHANNEL_CLOSE_OK);
    assert_int_equal(T.nres, 2);
    assert_int_equal(T.res[1].tag, 2);
    assert_int_equal(T.res[1].err, 0);
    assert_int_equal(T.closed, 0);
    close_gracefully();
}

/* Both sides close a channel at once: the client answers the broker's
 * close with close-ok, its own close completes with the broker's reason,
 * and the broker's close-ok that follows is taken quietly. */
static void test_channel_close_crossing(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_channel();
    hp_amqp_channel_on_close(ch, on_chan_close, (void *)3);
    assert_int_equal(hp_amqp_channel_close(ch, on_done, (void *)2), 0);
    broker_expect_on(1, HP_AMQP_CHANNEL_CLOSE);
    hp_amqp_method_t cl = {.id = HP_AMQP_CHANNEL_CLOSE};
    cl.channel_close.reply_code = 406;
    cl.channel_close.reply_text = hp_amqp_str("PRECONDITION_FAILED");
    broker_send(1, &cl);
    broker_expect_on(1, HP_AMQP_CHANNEL_CLOSE_OK);
    res_t *r = &T.res[T.nres - 1];
    assert_int_equal(r->tag, 2);
    assert_int_equal(r->code, 406);
    broker_send_id(1, HP_AMQP_CHANNEL_CLOSE_OK);
    assert_int_equal(T.res[T.nres - 1].tag, 2); /* nothing more */
    assert_true(T.non_close <= 1);
    assert_int_equal(T.closed, 0);
    /* The number is free again. */
    hp_amqp_channel_t *again = open_channel();
    assert_int_not_equal(hp_amqp_channel_id(again), 0);
    close_gracefully();
}

/* ---- publishing with confirms ---- */

static void skip_publish(uint16_t ch)
{
    broker_expect_publish(ch, NULL, NULL, NULL, NULL);
}

static hp_amqp_channel_t *open_confirm_channel(uint32_t window)
{
    hp_amqp_channel_t *ch = open_channel();
    uint16_t id = hp_amqp_channel_id(ch);
    assert_int_equal(hp_amqp_confirm_select(ch, window, on_done, (void *)50), 0);
    assert_int_equal(hp_amqp_confirm_select(ch, window, on_done, (void *)51), -EALREADY);
    int base = T.nres;
    hp_amqp_method_t m = confirm_select_ok(id);
    assert_false(m.confirm_select.nowait);
    assert_int_equal(T.nres, base + 1);
    assert_int_equal(T.res[base].tag, 50);
    assert_int_equal(T.res[base].err, 0);
    return ch;
}

/* Publishes a small message in confirm mode: it must get sequence number
 * `want` (the callback's arg is the number, which on_confirm checks). */
static void publish_seq(hp_amqp_channel_t *ch, uint64_t want)
{
    publish_want(ch, "", "q", "body", 4, want);
}

/* Acks out of order, single and multiple, and nacks: each publish's
 * callback runs exactly once, with its own status. */
static void test_confirms(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_confirm_channel(0);
    uint16_t id = hp_amqp_channel_id(ch);
    for (uint64_t s = 1; s <= 10; s++)
        publish_seq(ch, s);
    for (int i = 0; i < 10; i++)
        skip_publish(id);
    broker_confirm(id, true, 3, false);
    broker_confirm(id, true, 1, false);
    broker_confirm(id, false, 2, false);
    assert_int_equal(T.nconf, 3);
    assert_true(T.conf[0].seq == 3 && T.conf[0].status == HP_AMQP_ACKED);
    assert_true(T.conf[1].seq == 1 && T.conf[1].status == HP_AMQP_ACKED);
    assert_true(T.conf[2].seq == 2 && T.conf[2].status == HP_AMQP_NACKED);
    broker_confirm(id, true, 6, false);
    broker_confirm(id, true, 7, true); /* 4, 5, 7; 6 was acked already */
    assert_int_equal(T.nconf, 7);
    assert_int_equal(T.conf_count[6], 1);
    for (int i = 4; i < 7; i++)
        assert_int_equal(T.conf[i].status, HP_AMQP_ACKED);
    assert_int_equal(T.conf[4].seq, 4);
    assert_int_equal(T.conf[5].seq, 5);
    assert_int_equal(T.conf[6].seq, 7);
    broker_confirm(id, false, 10, true); /* 8, 9, 10 */
    assert_int_equal(T.nconf, 10);
    for (int i = 7; i < 10; i++) {
        assert_int_equal(T.conf[i].seq, (uint64_t)i + 1);
        assert_int_equal(T.conf[i].status, HP_AMQP_NACKED);
    }
    /* Confirms repeated for messages already settled change nothing. */
    broker_confirm(id, true, 10, true);
    broker_confirm(id, true, 4, false);
    assert_int_equal(T.nconf, 10);
    assert_each_once(10);
    /* Numbering goes on. */
    publish_seq(ch, 11);
    skip_publish(id);
    broker_confirm(id, true, 11, false);
    assert_int_equal(T.nconf, 11);
    assert_int_equal(T.conf_count[11], 1);
    assert_int_equal(T.closed, 0);
    close_gracefully();
}

/* Outside confirm mode a publish has no number and no callback. */
static void test_publish_without_confirms(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_channel();
    hp_amqp_msg_t msg = {.routing_key = "q", .body = "b", .len = 1};
    uint64_t seq = 99;
    assert_int_equal(hp_amqp_publish(ch, &msg, on_confirm, (void *)1, &seq), 0);
    assert_int_equal(seq, 0);
    skip_publish(1);
    close_gracefully();
    assert_int_equal(T.nconf, 0);
}

static int writable_publishes;
static hp_amqp_channel_t *writable_ch;
static uint64_t writable_next;

/* on_writable publishes what it may: the window's room. */
static void publish_on_writable(void)
{
    hp_amqp_msg_t msg = {.routing_key = "q", .body = "w", .len = 1};
    for (;;) {
        uint64_t seq;
        int r = hp_amqp_publish(writable_ch, &msg, on_confirm, (void *)(uintptr_t)writable_next,
                                &seq);
        if (r == -EAGAIN)
            break;
        assert_int_equal(r, 0);
        assert_int_equal(seq, writable_next);
        writable_next++;
        writable_publishes++;
    }
}

/* A full confirm window: -EAGAIN, and on_writable once acks have made
 * room (not for acks that leave the window's head unconfirmed). */
static void test_confirm_window(void **state)
{
    (void)state;
    writable_publishes = 0;
    start();
    hp_amqp_channel_t *ch = open_confirm_channel(3);
    uint16_t id = hp_amqp_channel_id(ch);
    hp_amqp_on_writable(T.conn, on_writable, NULL);
    for (uint64_t s = 1; s <= 3; s++)
        publish_seq(ch, s);
    hp_amqp_msg_t msg = {.routing_key = "q", .body = "x", .len = 1};
    assert_int_equal(hp_amqp_publish(ch, &msg, on_confirm, (void *)4, NULL), -EAGAIN);
    for (int i = 0; i < 3; i++)
        skip_publish(id);
    broker_expect_nothing(); /* the refused one was not sent */
    broker_confirm(id, true, 2, false);
    assert_int_equal(T.writable, 0); /* 1 still holds the window */
    assert_int_equal(hp_amqp_publish(ch, &msg, on_confirm, (void *)4, NULL), -EAGAIN);
    writable_ch = ch;
    writable_next = 4;
    T.on_writable = publish_on_writable;
    broker_confirm(id, true, 1, false);
    assert_int_equal(T.writable, 1);
    assert_int_equal(writable_publishes, 2); /* 4 and 5: 3 is still out */
    for (int i = 0; i < 2; i++)
        skip_publish(id);
    /* on_writable's own last publish was refused: it is called again. */
    T.on_writable = NULL;
    broker_confirm(id, true, 3, false);
    assert_int_equal(T.writable, 2);
    /* No -EAGAIN since: no call. */
    broker_confirm(id, true, 4, false);
    assert_int_equal(T.writable, 2);
    publish_seq(ch, 6);
    publish_seq(ch, 7);
    skip_publish(id);
    skip_publish(id);
    assert_int_equal(hp_amqp_publish(ch, &msg, on_confirm, (void *)8, NULL), -EAGAIN);
    broker_confirm(id, true, 7, true);
    assert_int_equal(T.writable, 3);
    assert_int_equal(T.nconf, 7);
    assert_each_once(7);
    close_gracefully();
}

/* Closing a channel fails its unconfirmed publishes with -ECANCELED,
 * each once, before the close completes; acks racing the close do not
 * settle them twice. */
static void test_confirm_close_cancels(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_confirm_channel(0);
    uint16_t id = hp_amqp_channel_id(ch);
    for (uint64_t s = 1; s <= 4; s++)
        publish_seq(ch, s);
    for (int i = 0; i < 4; i++)
        skip_publish(id);
    broker_confirm(id, true, 2, false);
    assert_int_equal(T.nconf, 1);
    int base = T.nres;
    assert_int_equal(hp_amqp_channel_close(ch, on_done, (void *)9), 0);
    broker_expect_on(id, HP_AMQP_CHANNEL_CLOSE);
    broker_confirm(id, true, 4, true); /* sent before the broker saw the close */
    broker_send_id(id, HP_AMQP_CHANNEL_CLOSE_OK);
    assert_int_equal(T.nres, base + 1);
    assert_int_equal(T.res[base].tag, 9);
    assert_int_equal(T.res[base].err, 0);
    assert_int_equal(T.nconf, 4);
    assert_each_once(4);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(T.conf[i].status, -ECANCELED);
        assert_true(T.conf[i].order < T.res[base].seq); /* before the close's callback */
    }
    close_gracefully();
}

/* The broker goes away: unconfirmed publishes, pending calls and the
 * connection all end with -ECONNRESET, in that order, each once. */
static void test_broker_vanishes(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_confirm_channel(0);
    publish_seq(ch, 1);
    publish_seq(ch, 2);
    assert_int_equal(hp_amqp_queue_declare(ch, "q", 0, HP_AMQP_NO_ARGS, on_done, (void *)3), 0);
    skip_publish(1);
    broker_close();
    PUMP_UNTIL(T.closed, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, -ECONNRESET);
    assert_int_equal(T.nconf, 2);
    assert_int_equal(T.conf[0].status, -ECONNRESET);
    assert_int_equal(T.conf[1].status, -ECONNRESET);
    res_t *r = &T.res[T.nres - 1];
    assert_int_equal(r->tag, 3);
    assert_int_equal(r->err, -ECONNRESET);
    assert_true(r->seq < T.closed_r.seq && T.conf[1].order < T.closed_r.seq);
}

/* ---- batches ---- */

static struct {
    int calls;
    hp_amqp_batch_result_t r;
    int tag;
    uint32_t seq;
} BT;

static void on_batch(hp_amqp_channel_t *ch, const hp_amqp_batch_result_t *r, void *arg)
{
    assert_non_null(ch);
    BT.calls++;
    BT.r = *r;
    BT.tag = (int)(intptr_t)arg;
    BT.seq = ++T.seq;
}

/* A batch in confirm mode: its messages go out together, take consecutive
 * numbers, and one callback reports them once all are settled; a batch
 * larger than the window is -EMSGSIZE, one that does not fit the room
 * left -EAGAIN, one with a bad message -EINVAL (nothing sent, no numbers
 * used); closing the channel settles what is left as failed. */
static void test_publish_batch(void **state)
{
    (void)state;
    memset(&BT, 0, sizeof BT);
    start();
    hp_amqp_channel_t *ch = open_confirm_channel(8);
    hp_amqp_msg_t msgs[9];
    char bodies[9][24];
    for (int i = 0; i < 9; i++) {
        snprintf(bodies[i], sizeof bodies[i], "batch %d", i);
        msgs[i] = (hp_amqp_msg_t){
            .routing_key = "q", .body = bodies[i], .len = strlen(bodies[i])};
    }
    uint64_t first = 0;
    assert_int_equal(hp_amqp_publish_batch(ch, msgs, 9, on_batch, (void *)1, &first), -EMSGSIZE);
    assert_int_equal(hp_amqp_publish_batch(ch, msgs, 5, on_batch, (void *)1, &first), 0);
    assert_int_equal(first, 1);
    for (int i = 0; i < 5; i++) {
        uint8_t *b;
        size_t len;
        broker_expect_publish(1, NULL, &b, &len, NULL);
        assert_int_equal(len, strlen(bodies[i]));
        assert_memory_equal(b, bodies[i], len);
        free(b);
    }
    broker_confirm(1, true, 2, false);
    broker_confirm(1, false, 4, false);
    assert_int_equal(BT.calls, 0);
    broker_confirm(1, true, 5, true);
    assert_int_equal(BT.calls, 1);
    assert_int_equal(BT.tag, 1);
    assert_int_equal(BT.r.first_seq, 1);
    assert_int_equal(BT.r.n, 5);
    assert_int_equal(BT.r.acked, 4);
    assert_int_equal(BT.r.nacked, 1);
    assert_int_equal(BT.r.failed, 0);
    assert_int_equal(BT.r.err, 0);

    /* A bad message refuses the whole batch. */
    char key[257];
    memset(key, 'k', 256);
    key[256] = '\0';
    msgs[2].routing_key = key;
    assert_int_equal(hp_amqp_publish_batch(ch, msgs, 3, on_batch, (void *)2, &first), -EINVAL);
    msgs[2].routing_key = "q";
    broker_expect_nothing();

    /* 6 .. 11, then no room for 3 more. */
    assert_int_equal(hp_amqp_publish_batch(ch, msgs, 6, on_batch, (void *)3, &first), 0);
    assert_int_equal(first, 6);
    assert_int_equal(hp_amqp_publish_batch(ch, msgs, 3, on_batch, (void *)4, &first), -EAGAIN);
    for (int i = 0; i < 6; i++)
        skip_publish(1);
    broker_confirm(1, true, 7, true); /* 6 and 7 */
    int base = T.nres;
    assert_int_equal(hp_amqp_channel_close(ch, on_done, (void *)9), 0);
    broker_expect_on(1, HP_AMQP_CHANNEL_CLOSE);
    broker_send_id(1, HP_AMQP_CHANNEL_CLOSE_OK);
    assert_int_equal(BT.calls, 2);
    assert_int_equal(BT.tag, 3);
    assert_int_equal(BT.r.first_seq, 6);
    assert_int_equal(BT.r.n, 6);
    assert_int_equal(BT.r.acked, 2);
    assert_int_equal(BT.r.failed, 4);
    assert_int_equal(BT.r.err, -ECANCELED);
    assert_int_equal(T.nres, base + 1);
    assert_true(BT.seq < T.res[base].seq); /* before the close completes */

    /* Outside confirm mode: sent, no numbers, no callback. */
    hp_amqp_channel_t *plain = open_channel();
    uint16_t id = hp_amqp_channel_id(plain);
    first = 99;
    assert_int_equal(hp_amqp_publish_batch(plain, msgs, 3, on_batch, (void *)5, &first), 0);
    assert_int_equal(first, 0);
    for (int i = 0; i < 3; i++)
        skip_publish(id);
    assert_int_equal(BT.calls, 2);
    close_gracefully();
}

/* A batch refused for want of room in a window that is not full (6 of 8
 * unconfirmed, 3 more asked for): on_writable comes once acks have made
 * room, as after a refusal by a full window, and the batch goes. */
static void test_publish_batch_room(void **state)
{
    (void)state;
    memset(&BT, 0, sizeof BT);
    start();
    hp_amqp_channel_t *ch = open_confirm_channel(8);
    uint16_t id = hp_amqp_channel_id(ch);
    hp_amqp_on_writable(T.conn, on_writable, NULL);
    hp_amqp_msg_t msgs[3];
    for (int i = 0; i < 3; i++)
        msgs[i] = (hp_amqp_msg_t){.routing_key = "q", .body = "b", .len = 1};
    uint64_t first = 0;
    assert_int_equal(hp_amqp_publish_batch(ch, msgs, 3, on_batch, (void *)1, &first), 0);
    assert_int_equal(hp_amqp_publish_batch(ch, msgs, 3, on_batch, (void *)2, &first), 0);
    assert_int_equal(first, 4);
    assert_int_equal(hp_amqp_publish_batch(ch, msgs, 3, on_batch, (void *)3, &first), -EAGAIN);
    for (int i = 0; i < 6; i++)
        skip_publish(id);
    broker_expect_nothing();
    broker_confirm(id, true, 3, true); /* the first batch: 3 unconfirmed, room for 5 */
    assert_int_equal(BT.calls, 1);
    assert_int_equal(T.writable, 1);
    assert_int_equal(hp_amqp_publish_batch(ch, msgs, 3, on_batch, (void *)3, &first), 0);
    assert_int_equal(first, 7);
    for (int i = 0; i < 3; i++)
        skip_publish(id);
    broker_confirm(id, true, 9, true);
    assert_int_equal(BT.calls, 3);
    assert_int_equal(BT.tag, 3);
    assert_int_equal(BT.r.acked, 3);
    close_gracefully();
}

/* ---- publishing: the frames on the wire ---- */

static hp_amqp_bytes_t make_headers(uint8_t *buf, uint32_t cap)
{
    hp_amqp_table_builder_t b;
    hp_amqp_table_init(&b, buf, cap);
    hp_amqp_table_add_str(&b, "trace-id", "abc-123");
    hp_amqp_table_add_int(&b, "attempt", 3);
    hp_amqp_table_open_table(&b, "nested");
    hp_amqp_table_add_bool(&b, "ok", true);
    hp_amqp_table_close(&b);
    hp_amqp_bytes_t h;
    assert_int_equal(hp_amqp_table_finish(&b, &h), 0);
    return h;
}

static void assert_bytes(hp_amqp_bytes_t b, const char *s)
{
    assert_int_equal(b.len, strlen(s));
    if (b.len)
        assert_memory_equal(b.ptr, s, b.len);
}

/* Method, header (body size, class, properties) and body frames, the body
 * split at frame_max - 8: for bodies around every boundary, framed inline
 * or in a buffer of their own (a body that takes more than the output
 * chunk), up to 200 KiB; each publish succeeds at once on an idle
 * connection. */
static void test_publish_frames(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_channel();
    uint8_t hbuf[256];
    hp_amqp_props_t props = {.flags = HP_AMQP_PROP_CONTENT_TYPE | HP_AMQP_PROP_HEADERS |
                                      HP_AMQP_PROP_DELIVERY_MODE | HP_AMQP_PROP_MESSAGE_ID |
                                      HP_AMQP_PROP_TIMESTAMP | HP_AMQP_PROP_PRIORITY,
                             .content_type = hp_amqp_str("application/json"),
                             .headers = make_headers(hbuf, sizeof hbuf),
                             .delivery_mode = 2,
                             .priority = 7,
                             .message_id = hp_amqp_str("m-1"),
                             .timestamp = 1700000000};
    static const size_t sizes[] = {0,    1,    100,  1000, 1300, 1400, 1500, 1600, 1700,
                                   1800, 1900, 2000, 2100, 3000, 4087, 4088, 4089, 8176,
                                   8177, 12000, 200 * 1024};
    static uint8_t body[200 * 1024]; /* static: nothing leaks when an assert fails */
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t len = sizes[i];
        fill_pattern(body, len, (uint32_t)i);
        hp_amqp_msg_t msg = {.exchange = "ex",
                             .routing_key = "rk.1",
                             .props = i % 2 ? &props : NULL,
                             .body = body,
                             .len = len,
                             .mandatory = i % 3 == 0};
        int r = hp_amqp_publish(ch, &msg, NULL, NULL, NULL);
        if (r != 0)
            fail_msg("a %zu-byte publish on an idle connection: %d", len, r);
        hp_amqp_props_t got;
        uint8_t *b;
        size_t blen, nframes;
        hp_amqp_method_t m = broker_expect_publish(1, &got, &b, &blen, &nframes);
        assert_bytes(m.basic_publish.exchange, "ex");
        assert_bytes(m.basic_publish.routing_key, "rk.1");
        assert_int_equal(m.basic_publish.mandatory, i % 3 == 0);
        assert_false(m.basic_publish.immediate);
        assert_int_equal(blen, len);
        assert_int_equal(nframes, (len + 4087) / 4088);
        if (len)
            assert_memory_equal(b, body, len);
        free(b);
        if (i % 2) {
            assert_int_equal(got.flags, props.flags);
            assert_bytes(got.content_type, "application/json");
            assert_bytes(got.message_id, "m-1");
            assert_int_equal(got.delivery_mode, 2);
            assert_int_equal(got.priority, 7);
            assert_int_equal(got.timestamp, 1700000000);
            assert_int_equal(got.headers.len, props.headers.len);
            assert_memory_equal(got.headers.ptr, props.headers.ptr, props.headers.len);
        } else {
            assert_int_equal(got.flags, 0);
        }
    }
    broker_expect_nothing();
    close_gracefully();
}

/* Names longer than a shortstr: -EINVAL, nothing sent, no sequence
 * number used; 255 bytes is fine. Properties the codec refuses, too. */
static void test_publish_einval(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_confirm_channel(0);
    char key[257];
    memset(key, 'k', 256);
    key[256] = '\0';
    hp_amqp_msg_t msg = {.routing_key = key, .body = "b", .len = 1};
    assert_int_equal(hp_amqp_publish(ch, &msg, on_confirm, (void *)1, NULL), -EINVAL);
    msg.routing_key = "k";
    msg.exchange = key;
    assert_int_equal(hp_amqp_publish(ch, &msg, on_confirm, (void *)1, NULL), -EINVAL);
    char ctype[300];
    memset(ctype, 'c', sizeof ctype - 1);
    ctype[sizeof ctype - 1] = '\0';
    hp_amqp_props_t props = {.flags = HP_AMQP_PROP_CONTENT_TYPE,
                             .content_type = hp_amqp_str(ctype)};
    msg.exchange = "";
    msg.props = &props;
    assert_int_equal(hp_amqp_publish(ch, &msg, on_confirm, (void *)1, NULL), -EINVAL);
    broker_expect_nothing();
    key[255] = '\0';
    msg.routing_key = key;
    msg.props = NULL;
    uint64_t seq;
    assert_int_equal(hp_amqp_publish(ch, &msg, on_confirm, (void *)1, &seq), 0);
    assert_int_equal(seq, 1);
    hp_amqp_method_t m = broker_expect_publish(1, NULL, NULL, NULL, NULL);
    assert_int_equal(m.basic_publish.routing_key.len, 255);
    broker_confirm(1, true, 1, false);
    assert_int_equal(T.nconf, 1);
    close_gracefully();
}

/* ---- publishing from outside the connection's callbacks ---- */

static int writev_calls;
static int writev_fd = -1;

static ssize_t counting_writev(int fd, const struct iovec *iov, int iovcnt)
{
    if (fd == writev_fd)
        writev_calls++;
    return hp_sys_real.writev(fd, iov, iovcnt);
}

static hp_amqp_channel_t *timer_ch;
static int timer_burst;

static void publish_from_timer(hp_timer_t *t)
{
    (void)t;
    for (int i = 0; i < timer_burst; i++) {
        char body[32];
        int n = snprintf(body, sizeof body, "message %d", i);
        hp_amqp_msg_t msg = {.routing_key = "q", .body = body, .len = (size_t)n};
        assert_int_equal(hp_amqp_publish(timer_ch, &msg, NULL, NULL, NULL), 0);
    }
}

/* Publishes from a timer reach the broker within the same loop turn (the
 * client asks for a flush at the end of the iteration), and a burst of
 * them leaves in one writev, in one piece. */
static void test_publish_from_timer(void **state)
{
    (void)state;
    H.cfg.wbuf_size = 16384; /* room for the whole burst in the output chunk */
    start();
    timer_ch = open_channel();
    hp_sys_ops_t ops = hp_sys_real;
    ops.writev = counting_writev;
    hp_sys_set_ops(&ops);
    writev_fd = hp_conn_fd(T.conn->c);
    for (int round = 0; round < 2; round++) {
        timer_burst = round == 0 ? 1 : 40;
        writev_calls = 0;
        hp_timer_t t;
        hp_timer_init(&t, publish_from_timer);
        hp_loop_timer_arm(&H.w.loop, &t, 10);
        tick(9);
        assert_int_equal(writev_calls, 0);
        tick(1); /* one iteration: the timer, then the flush */
        assert_int_equal(writev_calls, 1);
        /* Everything is in the broker's socket now, without another step. */
        int reads = B.reads;
        for (int i = 0; i < timer_burst; i++) {
            uint8_t *b;
            size_t len;
            broker_expect_publish(1, NULL, &b, &len, NULL);
            char want[32];
            int n = snprintf(want, sizeof want, "message %d", i);
            assert_int_equal(len, (size_t)n);
            assert_memory_equal(b, want, len);
            free(b);
        }
        assert_int_equal(B.reads, reads + 1);
        assert_int_equal(writev_calls, 1);
    }
    hp_sys_set_ops(NULL);
    close_gracefully();
}

/* A broker that does not read, and a burst of publishes (one turn of the
 * loop, as from a handler): they are taken until the socket and the
 * output are full, then -EAGAIN, and what the client holds in its own
 * memory stays within the output chunk and the message being sent (the
 * bound amqp.h promises); once the broker reads, on_writable comes and
 * every message arrives whole and in order. */
static void publish_backpressure(size_t size)
{
    B.rcvbuf = 16384; /* fewer messages to fill it */
    start();
    hp_amqp_channel_t *ch = open_channel();
    hp_amqp_on_writable(T.conn, on_writable, NULL);
    static uint8_t body[256 * 1024];
    assert_true(size <= sizeof body);
    uint64_t bound = H.cfg.wbuf_size + size + 4096;
    int accepted = 0;
    while (publish_pattern(ch, body, size, (uint32_t)accepted)) {
        accepted++;
        if (hp_conn_pending(T.conn->c) > bound)
            fail_msg("%d messages of %zu bytes taken: %llu bytes held by the client", accepted,
                     size, (unsigned long long)hp_conn_pending(T.conn->c));
        assert_true(accepted < 100000);
    }
    assert_true(accepted > 0);
    assert_int_equal(T.writable, 0);
    /* The broker reads: everything arrives, and on_writable follows. */
    broker_read_patterns(1, accepted, body, size);
    hp_amqp_msg_t msg = {.routing_key = "q", .body = body, .len = size};
    assert_int_equal(hp_amqp_publish(ch, &msg, NULL, NULL, NULL), 0);
    skip_publish(1);
    close_gracefully();
}

static void test_backpressure_small(void **state)
{
    (void)state;
    publish_backpressure(100);
}

static void test_backpressure_large(void **state)
{
    (void)state;
    publish_backpressure(200 * 1024);
}

/* ---- consuming ---- */

/* basic.consume with the broker naming the consumer: returns its tag's
 * deliveries' channel. */
static hp_amqp_channel_t *consume_on(const char *tag_given, const char *tag_named, int msg_tag)
{
    hp_amqp_channel_t *ch = open_channel();
    uint16_t id = hp_amqp_channel_id(ch);
    assert_int_equal(hp_amqp_consume(ch, "jobs", tag_given, HP_AMQP_NO_ACK | HP_AMQP_EXCLUSIVE,
                                     HP_AMQP_NO_ARGS, on_msg, (void *)(intptr_t)msg_tag, on_done,
                                     (void *)20),
                     0);
    hp_amqp_method_t m = broker_expect_on(id, HP_AMQP_BASIC_CONSUME);
    assert_bytes(m.basic_consume.queue, "jobs");
    assert_bytes(m.basic_consume.consumer_tag, tag_given ? tag_given : "");
    assert_true(m.basic_consume.no_ack && m.basic_consume.exclusive);
    assert_false(m.basic_consume.no_local || m.basic_consume.no_wait);
    int base = T.nres;
    hp_amqp_method_t ok = {.id = HP_AMQP_BASIC_CONSUME_OK};
    ok.basic_consume_ok.consumer_tag = hp_amqp_str(tag_named);
    broker_send(id, &ok);
    assert_int_equal(T.nres, base + 1);
    assert_int_equal(T.res[base].tag, 20);
    assert_int_equal(T.res[base].err, 0);
    assert_string_equal(T.res[base].ctag, tag_named);
    return ch;
}

static hp_amqp_method_t deliver_method(const char *ctag, uint64_t dtag)
{
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_DELIVER};
    m.basic_deliver.consumer_tag = hp_amqp_str(ctag);
    m.basic_deliver.delivery_tag = dtag;
    m.basic_deliver.redelivered = dtag % 2 == 0;
    m.basic_deliver.exchange = hp_amqp_str("ex");
    m.basic_deliver.routing_key = hp_amqp_str("rk.a");
    return m;
}

static uint8_t dlv_hbuf[256];

static hp_amqp_props_t deliver_props(void)
{
    return (hp_amqp_props_t){.flags = HP_AMQP_PROP_CONTENT_TYPE | HP_AMQP_PROP_HEADERS |
                                      HP_AMQP_PROP_MESSAGE_ID | HP_AMQP_PROP_DELIVERY_MODE,
                             .content_type = hp_amqp_str("text/plain"),
                             .headers = make_headers(dlv_hbuf, sizeof dlv_hbuf),
                             .message_id = hp_amqp_str("id-42"),
                             .delivery_mode = 1};
}

/* The delivery recorded last must be `dtag` with this body and the props
 * of deliver_props(). */
static void assert_delivery(const dlv_t *d, const char *ctag, uint64_t dtag, const uint8_t *body,
                            size_t len)
{
    assert_false(d->null);
    assert_string_equal(d->ctag, ctag);
    assert_int_equal(d->dtag, dtag);
    assert_int_equal(d->redelivered, dtag % 2 == 0);
    assert_string_equal(d->exchange, "ex");
    assert_string_equal(d->rkey, "rk.a");
    hp_amqp_props_t p = deliver_props();
    assert_int_equal(d->props.flags, p.flags);
    assert_string_equal(d->content_type, "text/plain");
    assert_string_equal(d->message_id, "id-42");
    assert_int_equal(d->props.delivery_mode, 1);
    assert_int_equal(d->headers_len, p.headers.len);
    assert_memory_equal(d->headers, p.headers.ptr, p.headers.len);
    hp_amqp_value_t v;
    hp_amqp_bytes_t h = {d->headers, d->headers_len};
    assert_int_equal(hp_amqp_table_get(h, "attempt", &v), 0);
    assert_int_equal(v.i, 3);
    assert_int_equal(d->len, len);
    if (len)
        assert_memory_equal(d->body, body, len);
}

/* Deliveries with the body in one frame, in several, in many tiny ones,
 * empty, and larger than the read buffer (copied frame by frame): each
 * arrives once, whole, with its properties. */
static void consume_sizes(uint32_t rbuf, uint32_t frame_max)
{
    H.cfg.rbuf_size = rbuf;
    hp_amqp_config_t cfg = test_cfg();
    cfg.frame_max = frame_max;
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *ch = consume_on(NULL, "amq.ctag-1", 7);
    uint16_t id = hp_amqp_channel_id(ch);
    uint32_t fmax = hp_amqp_frame_max(T.conn);
    uint32_t chunk = fmax - HP_AMQP_FRAME_OVERHEAD;
    static const struct {
        size_t len, frames; /* frames 0: as few as frame_max allows */
    } cases[] = {
        {5, 1},     {0, 0},     {3000, 3},  {3000, 300}, {1000, 1000}, {4000, 0},
        {20000, 0}, {20000, 9}, {70000, 0}, {150000, 0}, {150000, 400},
    };
    static uint8_t body[150000];
    hp_amqp_props_t props = deliver_props();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].len;
        size_t frames = cases[i].frames ? cases[i].frames : (len + chunk - 1) / chunk;
        if (len > 0 && (len + frames - 1) / frames > chunk)
            continue; /* frames too large for this frame_max */
        fill_pattern(body, len, (uint32_t)i + 100);
        hp_amqp_method_t m = deliver_method("amq.ctag-1", i + 1);
        int before = T.ndlv;
        broker_send_message(id, &m, &props, body, len, frames);
        PUMP_UNTIL(T.ndlv > before || T.closed, 1000);
        if (T.ndlv != before + 1)
            fail_msg("rbuf %u frame_max %u: a %zu-byte body in %zu frames: %d deliveries%s",
                     rbuf, fmax, len, frames, T.ndlv - before, T.closed ? " (closed)" : "");
        assert_int_equal(T.dlv[before].tag, 7);
        assert_delivery(&T.dlv[before], "amq.ctag-1", i + 1, body, len);
    }
    assert_int_equal(T.closed, 0);
    close_gracefully();
}

static void test_consume_small_buffer(void **state)
{
    (void)state;
    consume_sizes(4096, 0);
}

/* A read buffer larger than two frames: messages of several frames are
 * delivered from the buffer (the look-ahead path). */
static void test_consume_large_buffer(void **state)
{
    (void)state;
    consume_sizes(32768, 4096);
}

static void test_consume_large_frames(void **state)
{
    (void)state;
    consume_sizes(65536, 0);
}

/* A body cut into tiny frames and then one large one, sized so that the
 * message takes 1 to 8 bytes more than the read buffer: only the frames'
 * own 8 bytes of overhead tell that it cannot be waited for (and that
 * it must be copied instead). */
static void test_consume_overhead_decides(void **state)
{
    (void)state;
    start(); /* 4 KiB read buffer, frame_max 4096 */
    hp_amqp_channel_t *ch = consume_on("t", "t", 7);
    uint16_t id = hp_amqp_channel_id(ch);
    uint32_t capacity = hp_conn_rbuf_capacity(T.conn->c);
    static uint8_t wire[8192], body[4096];
    for (size_t over = 1; over <= 8; over++) {
        /* Method and header frames first, to learn their size. */
        hp_amqp_method_t m = deliver_method("t", over);
        size_t head = msg_build(wire, sizeof wire, id, &m, NULL, NULL, 0, 0);
        const size_t tiny = 10;
        /* head + tiny * 9 + (8 + last) == capacity + over */
        size_t last = capacity + over - head - tiny * 9 - HP_AMQP_FRAME_OVERHEAD;
        size_t len = tiny + last;
        fill_pattern(body, len, (uint32_t)over);
        hp_amqp_wr_t w = hp_amqp_wr(wire, sizeof wire);
        size_t at = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_METHOD, id);
        assert_int_equal(hp_amqp_method_encode(&w, &m), 0);
        hp_amqp_frame_end(&w, at);
        at = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_HEADER, id);
        hp_amqp_frame_content_header(&w, HP_AMQP_CLASS_BASIC, len);
        assert_int_equal(hp_amqp_props_encode(&w, &(hp_amqp_props_t){0}), 0);
        hp_amqp_frame_end(&w, at);
        for (size_t i = 0; i <= tiny; i++) {
            at = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_BODY, id);
            hp_amqp_wr_bytes(&w, body + i, i < tiny ? 1 : last);
            hp_amqp_frame_end(&w, at);
        }
        assert_false(w.overflow);
        assert_int_equal(w.len, capacity + over);
        int before = T.ndlv;
        broker_write(wire, w.len);
        client_sync();
        PUMP_UNTIL(T.ndlv > before || T.closed, 1000);
        if (T.ndlv != before + 1)
            fail_msg("%zu bytes over the buffer: %d deliveries%s", over, T.ndlv - before,
                     T.closed ? " (closed)" : "");
        assert_int_equal(T.dlv[before].len, len);
        assert_memory_equal(T.dlv[before].body, body, len);
    }
    close_gracefully();
}

/* A header frame nearly as large as frame_max (a big headers table) behind
 * its method: the two do not fit the read buffer together, and the
 * message is copied rather than waited for; at every split of the
 * header. */
static void test_consume_large_header(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = consume_on("big", "big", 7);
    uint16_t id = hp_amqp_channel_id(ch);
    static uint8_t table[4096], wire[8192];
    hp_amqp_table_builder_t b;
    hp_amqp_table_init(&b, table, sizeof table);
    char value[1000];
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    for (int i = 0; i < 4; i++) { /* a header frame of 4,065 bytes */
        char key[3] = {'h', (char)('0' + i), '\0'};
        hp_amqp_table_add_str(&b, key, value);
    }
    hp_amqp_table_add_str(&b, "last", "x");
    hp_amqp_props_t props = {.flags = HP_AMQP_PROP_HEADERS};
    assert_int_equal(hp_amqp_table_finish(&b, &props.headers), 0);
    hp_amqp_method_t m = deliver_method("big", 1);
    size_t n = msg_build(wire, sizeof wire, id, &m, &props, "body", 4, 1);
    hp_amqp_frame_t f;
    long mlen = hp_amqp_frame_parse(wire, n, 0, &f);
    long hlen = hp_amqp_frame_parse(wire + mlen, n - (size_t)mlen, 0, &f);
    assert_true(hlen <= 4096 && mlen + hlen > 4096);
    for (size_t at = (size_t)mlen; at < (size_t)(mlen + hlen); at += 97) {
        int before = T.ndlv;
        broker_write(wire, at);
        client_sync();
        broker_write(wire + at, n - at);
        client_sync();
        if (T.ndlv != before + 1)
            fail_msg("split at %zu: %d deliveries%s", at, T.ndlv - before,
                     T.closed ? " (closed)" : "");
        dlv_t *d = &T.dlv[before];
        assert_int_equal(d->headers_len, props.headers.len);
        assert_memory_equal(d->headers, props.headers.ptr, props.headers.len);
        assert_int_equal(d->len, 4);
        assert_memory_equal(d->body, "body", 4);
        free(d->body);
        T.ndlv = before;
    }
    close_gracefully();
}

/* A message written in two pieces split at every byte offset (frame
 * boundaries and the middle of each frame's header, payload and end
 * octet): delivered once, whole, each time; and in three pieces split at
 * the frame boundaries. */
static void split_everywhere(uint32_t rbuf, size_t len, size_t frames)
{
    H.cfg.rbuf_size = rbuf;
    hp_amqp_config_t cfg = test_cfg();
    cfg.frame_max = 4096;
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *ch = consume_on("mine", "mine", 7);
    uint16_t id = hp_amqp_channel_id(ch);
    static uint8_t body[8192], wire[16384];
    size_t cap = sizeof wire;
    assert_true(len <= sizeof body && len + 8 * frames + 4096 <= cap);
    fill_pattern(body, len, 5);
    hp_amqp_props_t props = deliver_props();
    hp_amqp_method_t m = deliver_method("mine", 1);
    size_t n = msg_build(wire, cap, id, &m, &props, body, len, frames);
    for (size_t at = 1; at < n; at++) {
        int before = T.ndlv;
        broker_write(wire, at);
        client_sync();
        assert_int_equal(T.ndlv, before);
        broker_write(wire + at, n - at);
        client_sync();
        if (T.ndlv != before + 1)
            fail_msg("split at %zu of %zu: %d deliveries%s", at, n, T.ndlv - before,
                     T.closed ? " (closed)" : "");
        assert_delivery(&T.dlv[before], "mine", 1, body, len);
        free(T.dlv[before].body);
        T.ndlv = before;
    }
    assert_int_equal(T.closed, 0);
    close_gracefully();
}

static void test_split_fast_path(void **state)
{
    (void)state;
    split_everywhere(32768, 700, 3);
}

static void test_split_assembled(void **state)
{
    (void)state;
    split_everywhere(4096, 6000, 2);
}

/* Two channels' messages interleaved frame by frame (the spec allows it
 * across channels). */
static void test_interleaved_channels(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *c1 = consume_on("one", "one", 1);
    hp_amqp_channel_t *c2 = consume_on("two", "two", 2);
    uint8_t b1[5000], b2[100];
    fill_pattern(b1, sizeof b1, 1);
    fill_pattern(b2, sizeof b2, 2);
    hp_amqp_props_t props = deliver_props();
    uint8_t w1[8192], w2[1024];
    hp_amqp_method_t m1 = deliver_method("one", 1), m2 = deliver_method("two", 1);
    size_t n1 = msg_build(w1, sizeof w1, hp_amqp_channel_id(c1), &m1, &props, b1, sizeof b1, 2);
    size_t n2 = msg_build(w2, sizeof w2, hp_amqp_channel_id(c2), &m2, &props, b2, sizeof b2, 1);
    /* Frame offsets: split each into its frames. */
    size_t f1[8], f2[8], k1 = 0, k2 = 0;
    for (size_t at = 0; at < n1; k1++) {
        hp_amqp_frame_t f;
        f1[k1] = at;
        at += (size_t)hp_amqp_frame_parse(w1 + at, n1 - at, 0, &f);
    }
    f1[k1] = n1;
    for (size_t at = 0; at < n2; k2++) {
        hp_amqp_frame_t f;
        f2[k2] = at;
        at += (size_t)hp_amqp_frame_parse(w2 + at, n2 - at, 0, &f);
    }
    f2[k2] = n2;
    assert_int_equal(k1, 4);
    assert_int_equal(k2, 3);
    for (size_t i = 0; i < 4; i++) {
        broker_write(w1 + f1[i], f1[i + 1] - f1[i]);
        if (i < 3)
            broker_write(w2 + f2[i], f2[i + 1] - f2[i]);
    }
    client_sync();
    PUMP_UNTIL(T.ndlv == 2 || T.closed, 1000);
    assert_int_equal(T.ndlv, 2);
    assert_int_equal(T.dlv[0].tag, 2); /* the small one is whole first */
    assert_delivery(&T.dlv[0], "two", 1, b2, sizeof b2);
    assert_int_equal(T.dlv[1].tag, 1);
    assert_delivery(&T.dlv[1], "one", 1, b1, sizeof b1);
    close_gracefully();
}

/* The broker cancels a consumer (its queue was deleted): on_msg(NULL)
 * once, cancel-ok back, and no delivery for that tag after; the client's
 * own cancel completes with the tag. */
static void test_cancel(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = consume_on(NULL, "ctag-a", 7);
    uint16_t id = hp_amqp_channel_id(ch);
    hp_amqp_method_t c = {.id = HP_AMQP_BASIC_CANCEL};
    c.basic_cancel.consumer_tag = hp_amqp_str("ctag-a");
    broker_send(id, &c);
    assert_int_equal(T.ndlv, 1);
    assert_true(T.dlv[0].null);
    assert_int_equal(T.dlv[0].tag, 7);
    hp_amqp_method_t ok = broker_expect_on(id, HP_AMQP_BASIC_CANCEL_OK);
    assert_bytes(ok.basic_cancel_ok.consumer_tag, "ctag-a");
    hp_amqp_method_t m = deliver_method("ctag-a", 1);
    broker_send_message(id, &m, NULL, "late", 4, 1);
    assert_int_equal(T.ndlv, 1);

    /* The client cancels another. */
    assert_int_equal(hp_amqp_consume(ch, "q2", "ctag-b", 0, HP_AMQP_NO_ARGS, on_msg, (void *)8,
                                     on_done, (void *)21),
                     0);
    broker_expect_on(id, HP_AMQP_BASIC_CONSUME);
    hp_amqp_method_t cok = {.id = HP_AMQP_BASIC_CONSUME_OK};
    cok.basic_consume_ok.consumer_tag = hp_amqp_str("ctag-b");
    broker_send(id, &cok);
    m = deliver_method("ctag-b", 2);
    broker_send_message(id, &m, NULL, "one", 3, 1);
    assert_int_equal(T.ndlv, 2);
    assert_int_equal(T.dlv[1].tag, 8);
    assert_int_equal(hp_amqp_cancel(ch, "ctag-b", on_done, (void *)22), 0);
    hp_amqp_method_t cm = broker_expect_on(id, HP_AMQP_BASIC_CANCEL);
    assert_bytes(cm.basic_cancel.consumer_tag, "ctag-b");
    assert_false(cm.basic_cancel.no_wait);
    hp_amqp_method_t cancel_ok = {.id = HP_AMQP_BASIC_CANCEL_OK};
    cancel_ok.basic_cancel_ok.consumer_tag = hp_amqp_str("ctag-b");
    broker_send(id, &cancel_ok);
    res_t *r = &T.res[T.nres - 1];
    assert_int_equal(r->tag, 22);
    assert_int_equal(r->err, 0);
    assert_string_equal(r->ctag, "ctag-b");
    m = deliver_method("ctag-b", 4);
    broker_send_message(id, &m, NULL, "two", 3, 1);
    assert_int_equal(T.ndlv, 2);
    assert_int_equal(T.closed, 0);
    close_gracefully();
}

/* basic.get: a message (get-ok) or none (get-empty); the done callback
 * only on failure. */
static void test_get(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_channel();
    assert_int_equal(hp_amqp_get(ch, "jobs", HP_AMQP_NO_ACK, on_msg, (void *)5, on_done,
                                 (void *)6),
                     0);
    assert_int_equal(hp_amqp_get(ch, "jobs", 0, on_msg, (void *)7, on_done, (void *)8), 0);
    hp_amqp_method_t g = broker_expect_on(1, HP_AMQP_BASIC_GET);
    assert_bytes(g.basic_get.queue, "jobs");
    assert_true(g.basic_get.no_ack);
    g = broker_expect_on(1, HP_AMQP_BASIC_GET);
    assert_false(g.basic_get.no_ack);
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_GET_OK};
    m.basic_get_ok.delivery_tag = 9;
    m.basic_get_ok.redelivered = true;
    m.basic_get_ok.exchange = hp_amqp_str("");
    m.basic_get_ok.routing_key = hp_amqp_str("jobs");
    m.basic_get_ok.message_count = 3;
    hp_amqp_props_t props = deliver_props();
    broker_send_message(1, &m, &props, "payload", 7, 1);
    assert_int_equal(T.ndlv, 1);
    dlv_t *d = &T.dlv[0];
    assert_int_equal(d->tag, 5);
    assert_false(d->null);
    assert_int_equal(d->dtag, 9);
    assert_true(d->redelivered);
    assert_int_equal(d->message_count, 3);
    assert_string_equal(d->rkey, "jobs");
    assert_string_equal(d->content_type, "text/plain");
    assert_int_equal(d->len, 7);
    assert_memory_equal(d->body, "payload", 7);
    broker_send_id(1, HP_AMQP_BASIC_GET_EMPTY);
    assert_int_equal(T.ndlv, 2);
    assert_true(T.dlv[1].null);
    assert_int_equal(T.dlv[1].tag, 7);
    assert_int_equal(T.nres, 1); /* the open only */
    /* A get that fails: its done callback. */
    assert_int_equal(hp_amqp_get(ch, "gone", 0, on_msg, (void *)9, on_done, (void *)10), 0);
    broker_expect_on(1, HP_AMQP_BASIC_GET);
    hp_amqp_method_t cl = {.id = HP_AMQP_CHANNEL_CLOSE};
    cl.channel_close.reply_code = 404;
    cl.channel_close.reply_text = hp_amqp_str("NOT_FOUND - no queue 'gone'");
    broker_send(1, &cl);
    broker_expect_on(1, HP_AMQP_CHANNEL_CLOSE_OK);
    assert_int_equal(T.nres, 2);
    assert_int_equal(T.res[1].tag, 10);
    assert_int_equal(T.res[1].code, 404);
    assert_int_equal(T.ndlv, 2);
    close_gracefully();
}

/* ack, nack and reject carry the tag and their bits. */
static void test_acks_on_the_wire(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_channel();
    assert_int_equal(hp_amqp_ack(ch, 5, false), 0);
    assert_int_equal(hp_amqp_ack(ch, 7, true), 0);
    assert_int_equal(hp_amqp_nack(ch, 8, false, true), 0);
    assert_int_equal(hp_amqp_nack(ch, 9, true, false), 0);
    assert_int_equal(hp_amqp_reject(ch, 10, true), 0);
    assert_int_equal(hp_amqp_reject(ch, 0x123456789ull, false), 0);
    hp_amqp_method_t m = broker_expect_on(1, HP_AMQP_BASIC_ACK);
    assert_int_equal(m.basic_ack.delivery_tag, 5);
    assert_false(m.basic_ack.multiple);
    m = broker_expect_on(1, HP_AMQP_BASIC_ACK);
    assert_int_equal(m.basic_ack.delivery_tag, 7);
    assert_true(m.basic_ack.multiple);
    m = broker_expect_on(1, HP_AMQP_BASIC_NACK);
    assert_int_equal(m.basic_nack.delivery_tag, 8);
    assert_false(m.basic_nack.multiple);
    assert_true(m.basic_nack.requeue);
    m = broker_expect_on(1, HP_AMQP_BASIC_NACK);
    assert_int_equal(m.basic_nack.delivery_tag, 9);
    assert_true(m.basic_nack.multiple);
    assert_false(m.basic_nack.requeue);
    m = broker_expect_on(1, HP_AMQP_BASIC_REJECT);
    assert_int_equal(m.basic_reject.delivery_tag, 10);
    assert_true(m.basic_reject.requeue);
    m = broker_expect_on(1, HP_AMQP_BASIC_REJECT);
    assert_int_equal(m.basic_reject.delivery_tag, 0x123456789ull);
    assert_false(m.basic_reject.requeue);
    close_gracefully();
}

/* An unroutable mandatory publish comes back: on_return with 312. */
static void test_return(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_channel();
    hp_amqp_channel_on_return(ch, on_msg, (void *)33);
    hp_amqp_msg_t msg = {.exchange = "ex", .routing_key = "nowhere", .body = "lost", .len = 4,
                         .mandatory = true};
    assert_int_equal(hp_amqp_publish(ch, &msg, NULL, NULL, NULL), 0);
    hp_amqp_method_t p = broker_expect_publish(1, NULL, NULL, NULL, NULL);
    assert_true(p.basic_publish.mandatory);
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_RETURN};
    m.basic_return.reply_code = 312;
    m.basic_return.reply_text = hp_amqp_str("NO_ROUTE");
    m.basic_return.exchange = hp_amqp_str("ex");
    m.basic_return.routing_key = hp_amqp_str("nowhere");
    hp_amqp_props_t props = deliver_props();
    broker_send_message(1, &m, &props, "lost", 4, 1);
    assert_int_equal(T.ndlv, 1);
    dlv_t *d = &T.dlv[0];
    assert_int_equal(d->tag, 33);
    assert_int_equal(d->reply_code, HP_AMQP_NO_ROUTE);
    assert_string_equal(d->rtext, "NO_ROUTE");
    assert_string_equal(d->exchange, "ex");
    assert_string_equal(d->rkey, "nowhere");
    assert_int_equal(d->dtag, 0);
    assert_string_equal(d->content_type, "text/plain");
    assert_int_equal(d->len, 4);
    assert_memory_equal(d->body, "lost", 4);
    /* Without a callback, returns are dropped. */
    hp_amqp_channel_on_return(ch, NULL, NULL);
    broker_send_message(1, &m, NULL, "lost", 4, 1);
    assert_int_equal(T.ndlv, 1);
    assert_int_equal(T.closed, 0);
    close_gracefully();
}

/* ---- protocol errors from the broker ---- */

/* After a protocol error the client sends connection.close with `code`;
 * the pending calls and the connection end with -EPROTO and that code
 * once the broker's close-ok is in. */
static void expect_client_close(uint16_t code, int pending_tag)
{
    hp_amqp_method_t m = broker_expect_on(0, HP_AMQP_CONNECTION_CLOSE);
    if (m.connection_close.reply_code != code)
        fail_msg("connection.close %u (%.*s), expected %u", m.connection_close.reply_code,
                 (int)m.connection_close.reply_text.len,
                 (const char *)m.connection_close.reply_text.ptr, code);
    assert_int_equal(T.closed, 0);
    broker_send_id(0, HP_AMQP_CONNECTION_CLOSE_OK);
    PUMP_UNTIL(T.closed, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, -EPROTO);
    assert_int_equal(T.closed_r.code, code);
    if (pending_tag) {
        res_t *r = &T.res[T.nres - 1];
        assert_int_equal(r->tag, pending_tag);
        assert_int_equal(r->err, -EPROTO);
        assert_int_equal(r->code, code);
        assert_true(r->seq < T.closed_r.seq);
    }
    broker_expect_eof();
}

/* A channel with a call waiting for its reply. */
static hp_amqp_channel_t *channel_with_pending(void)
{
    hp_amqp_channel_t *ch = open_channel();
    assert_int_equal(hp_amqp_queue_declare(ch, "q", 0, HP_AMQP_NO_ARGS, on_done, (void *)99), 0);
    broker_expect_on(hp_amqp_channel_id(ch), HP_AMQP_QUEUE_DECLARE);
    return ch;
}

/* A frame whose end octet is not 0xCE: 501. */
static void test_bad_frame_end(void **state)
{
    (void)state;
    start();
    channel_with_pending();
    uint8_t buf[256];
    hp_amqp_method_t ok = {.id = HP_AMQP_QUEUE_DECLARE_OK};
    ok.queue_declare_ok.queue = hp_amqp_str("q");
    size_t n = frame_method(buf, sizeof buf, 1, &ok);
    buf[n - 1] = 0x00;
    broker_write(buf, n);
    client_sync();
    assert_int_equal(T.nres, 1); /* the declare did not complete */
    expect_client_close(HP_AMQP_FRAME_ERROR, 99);
}

/* A content header with no method before it: 505. */
static void test_header_without_method(void **state)
{
    (void)state;
    start();
    channel_with_pending();
    uint8_t buf[256];
    hp_amqp_wr_t w = hp_amqp_wr(buf, sizeof buf);
    size_t start_at = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_HEADER, 1);
    hp_amqp_frame_content_header(&w, HP_AMQP_CLASS_BASIC, 3);
    hp_amqp_props_t none = {0};
    assert_int_equal(hp_amqp_props_encode(&w, &none), 0);
    hp_amqp_frame_end(&w, start_at);
    broker_write(buf, w.len);
    expect_client_close(HP_AMQP_UNEXPECTED_FRAME, 99);
}

/* A body frame on channel 0 (no channel at all): 505. */
static void test_body_on_channel_zero(void **state)
{
    (void)state;
    start();
    channel_with_pending();
    uint8_t buf[64];
    hp_amqp_wr_t w = hp_amqp_wr(buf, sizeof buf);
    size_t start_at = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_BODY, 0);
    hp_amqp_wr_bytes(&w, "abc", 3);
    hp_amqp_frame_end(&w, start_at);
    broker_write(buf, w.len);
    expect_client_close(HP_AMQP_UNEXPECTED_FRAME, 99);
}

/* A method for a channel that is not open: 504. */
static void test_frame_for_closed_channel(void **state)
{
    (void)state;
    start();
    channel_with_pending();
    hp_amqp_method_t ok = {.id = HP_AMQP_QUEUE_DECLARE_OK};
    ok.queue_declare_ok.queue = hp_amqp_str("q");
    uint8_t buf[256];
    broker_write(buf, frame_method(buf, sizeof buf, 7, &ok));
    expect_client_close(HP_AMQP_CHANNEL_ERROR, 99);
}

/* An ack for a sequence number never published: 503; also on a channel
 * that is not in confirm mode. */
static void test_ack_never_published(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_confirm_channel(0);
    publish_seq(ch, 1);
    publish_seq(ch, 2);
    skip_publish(1);
    skip_publish(1);
    assert_int_equal(hp_amqp_queue_declare(ch, "q", 0, HP_AMQP_NO_ARGS, on_done, (void *)99), 0);
    broker_expect_on(1, HP_AMQP_QUEUE_DECLARE);
    broker_confirm(1, true, 3, false);
    assert_int_equal(T.nconf, 0);
    expect_client_close(HP_AMQP_COMMAND_INVALID, 99);
    /* The unconfirmed publishes ended with the connection, once each. */
    assert_int_equal(T.nconf, 2);
    assert_int_equal(T.conf[0].status, -EPROTO);
    assert_int_equal(T.conf_count[1] + T.conf_count[2], 2);
}

static void test_ack_without_confirm_mode(void **state)
{
    (void)state;
    start();
    channel_with_pending();
    broker_confirm(1, true, 1, false);
    expect_client_close(HP_AMQP_COMMAND_INVALID, 99);
}

/* A reply to no call: 503. */
static void test_reply_to_nothing(void **state)
{
    (void)state;
    start();
    open_channel();
    broker_send_id(1, HP_AMQP_QUEUE_BIND_OK);
    expect_client_close(HP_AMQP_COMMAND_INVALID, 0);
}

/* A method the spec does not have: 540. */
static void test_unknown_method(void **state)
{
    (void)state;
    start();
    channel_with_pending();
    uint8_t buf[64];
    hp_amqp_wr_t w = hp_amqp_wr(buf, sizeof buf);
    size_t start_at = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_METHOD, 1);
    hp_amqp_wr_u16(&w, 60);
    hp_amqp_wr_u16(&w, 999);
    hp_amqp_frame_end(&w, start_at);
    broker_write(buf, w.len);
    expect_client_close(HP_AMQP_NOT_IMPLEMENTED, 99);
}

/* A frame larger than the negotiated frame_max: 501. */
static void test_frame_too_large(void **state)
{
    (void)state;
    start();
    channel_with_pending();
    uint8_t buf[8];
    hp_amqp_wr_t w = hp_amqp_wr(buf, sizeof buf);
    hp_amqp_wr_u8(&w, HP_AMQP_FRAME_BODY);
    hp_amqp_wr_u16(&w, 1);
    hp_amqp_wr_u32(&w, 100000);
    broker_write(buf, w.len);
    expect_client_close(HP_AMQP_FRAME_ERROR, 99);
}

/* After its connection.close the client waits for close-ok, dropping what
 * else comes (heartbeats, a delivery already in flight); a broker that
 * never answers is given connect_timeout_ms. */
static void test_error_then_wait_for_close_ok(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = consume_on("c", "c", 7);
    (void)ch;
    uint8_t buf[256];
    size_t n = frame_method(buf, sizeof buf, 9, &(hp_amqp_method_t){.id = HP_AMQP_BASIC_QOS_OK});
    broker_write(buf, n);
    hp_amqp_method_t m = broker_expect_on(0, HP_AMQP_CONNECTION_CLOSE);
    assert_int_equal(m.connection_close.reply_code, HP_AMQP_CHANNEL_ERROR);
    broker_heartbeat();
    hp_amqp_method_t d = deliver_method("c", 1);
    broker_send_message(1, &d, NULL, "in flight", 9, 1);
    broker_heartbeat();
    pump_for(20);
    broker_fill();
    assert_false(B.eof); /* still waiting for close-ok */
    assert_int_equal(T.closed, 0);
    assert_int_equal(T.ndlv, 0);
    assert_closes_after(10000, -EPROTO);
    assert_int_equal(T.closed_r.code, HP_AMQP_CHANNEL_ERROR);
    broker_expect_eof();
}

/* A message announced larger than the client accepts (128 MiB): 506. */
static void test_message_too_large(void **state)
{
    (void)state;
    start();
    consume_on("c", "c", 7);
    uint8_t buf[512];
    hp_amqp_method_t m = deliver_method("c", 1);
    size_t n = frame_method(buf, sizeof buf, 1, &m);
    hp_amqp_wr_t w = hp_amqp_wr(buf + n, sizeof buf - n);
    size_t start_at = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_HEADER, 1);
    hp_amqp_frame_content_header(&w, HP_AMQP_CLASS_BASIC, (uint64_t)200 << 20);
    hp_amqp_props_t none = {0};
    assert_int_equal(hp_amqp_props_encode(&w, &none), 0);
    hp_amqp_frame_end(&w, start_at);
    broker_write(buf, n + w.len);
    expect_client_close(HP_AMQP_RESOURCE_ERROR, 0);
    assert_int_equal(T.ndlv, 0);
}

/* More body than the header announced, and a method in the middle of a
 * message: 505, whether the message is waited for in the buffer or
 * copied. */
static void test_message_malformed(void **state)
{
    (void)state;
    for (int round = 0; round < 4; round++) {
        if (round) {
            teardown(NULL);
            setup(NULL);
        }
        H.cfg.rbuf_size = round % 2 ? 32768 : 4096;
        hp_amqp_config_t cfg = test_cfg();
        cfg.frame_max = 4096;
        start_with(&cfg, 0, 0, 0);
        consume_on("c", "c", 7);
        static uint8_t buf[16384];
        hp_amqp_method_t m = deliver_method("c", 1);
        uint8_t body[3000];
        memset(body, 'b', sizeof body);
        size_t n = msg_build(buf, sizeof buf, 1, &m, NULL, body, sizeof body, 2);
        /* The header says 1,000 bytes: patch its body size (after the
         * method frame: 7 header bytes, class, weight). */
        hp_amqp_frame_t f;
        long mlen = hp_amqp_frame_parse(buf, n, 0, &f);
        if (round < 2) {
            hp_amqp_wr_t w = hp_amqp_wr(buf + mlen + 7 + 4, 8);
            hp_amqp_wr_u64(&w, 1000);
        } else {
            /* A queue.declare-ok between the header and the body. */
            long hlen = hp_amqp_frame_parse(buf + mlen, n - (size_t)mlen, 0, &f);
            size_t at = (size_t)(mlen + hlen);
            uint8_t mid[128];
            hp_amqp_method_t ok = {.id = HP_AMQP_QUEUE_DECLARE_OK};
            ok.queue_declare_ok.queue = hp_amqp_str("q");
            size_t k = frame_method(mid, sizeof mid, 1, &ok);
            memmove(buf + at + k, buf + at, n - at);
            memcpy(buf + at, mid, k);
            n += k;
        }
        broker_write(buf, n);
        expect_client_close(HP_AMQP_UNEXPECTED_FRAME, 0);
        assert_int_equal(T.ndlv, 0);
    }
}

/* ---- the connection: blocked, closed by either side ---- */

static void test_blocked(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_channel();
    hp_amqp_on_writable(T.conn, on_writable, NULL);
    hp_amqp_method_t b = {.id = HP_AMQP_CONNECTION_BLOCKED};
    b.connection_blocked.reason = hp_amqp_str("low on memory");
    broker_send(0, &b);
    assert_int_equal(T.blocked, 1);
    assert_string_equal(T.blocked_reason, "low on memory");
    assert_true(hp_amqp_blocked(T.conn));
    hp_amqp_msg_t msg = {.routing_key = "q", .body = "x", .len = 1};
    assert_int_equal(hp_amqp_publish(ch, &msg, NULL, NULL, NULL), -EAGAIN);
    assert_int_equal(hp_amqp_publish(ch, &msg, NULL, NULL, NULL), -EAGAIN);
    broker_expect_nothing();
    /* Calls other than publish still go. */
    assert_int_equal(hp_amqp_qos(ch, 5, false, on_done, (void *)1), 0);
    broker_expect_on(1, HP_AMQP_BASIC_QOS);
    broker_send(0, &b); /* again: no second event */
    assert_int_equal(T.blocked, 1);
    assert_int_equal(T.writable, 0);
    broker_send_id(0, HP_AMQP_CONNECTION_UNBLOCKED);
    assert_int_equal(T.unblocked, 1);
    assert_false(hp_amqp_blocked(T.conn));
    assert_int_equal(T.writable, 1);
    assert_int_equal(hp_amqp_publish(ch, &msg, NULL, NULL, NULL), 0);
    skip_publish(1);
    broker_send_id(0, HP_AMQP_CONNECTION_UNBLOCKED);
    assert_int_equal(T.unblocked, 1);
    assert_int_equal(T.writable, 1);
    close_gracefully();
}

/* The broker closes the connection: close-ok back, the pending calls fail
 * with the broker's code, then CLOSED with it. */
static void test_closed_by_broker(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = channel_with_pending();
    hp_amqp_channel_on_close(ch, on_chan_close, (void *)3);
    hp_amqp_method_t cl = {.id = HP_AMQP_CONNECTION_CLOSE};
    cl.connection_close.reply_code = 320;
    cl.connection_close.reply_text = hp_amqp_str("CONNECTION_FORCED - shutdown");
    broker_send(0, &cl);
    broker_expect_on(0, HP_AMQP_CONNECTION_CLOSE_OK);
    broker_expect_eof();
    PUMP_UNTIL(T.closed, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, -EPROTO);
    assert_int_equal(T.closed_r.code, 320);
    assert_string_equal(T.closed_r.text, "CONNECTION_FORCED - shutdown");
    res_t *r = &T.res[T.nres - 1];
    assert_int_equal(r->tag, 99);
    assert_int_equal(r->err, -EPROTO);
    assert_int_equal(r->code, 320);
    assert_true(r->seq < T.closed_r.seq);
}

/* hp_amqp_close: every pending call and unconfirmed publish fails with
 * -ECANCELED first, connection.close goes out, and close-ok ends it with
 * CLOSED err 0; what the broker sends in between is dropped. */
static void test_close_by_client(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_confirm_channel(0);
    hp_amqp_channel_t *cons = consume_on("c", "c", 7);
    (void)cons;
    publish_seq(ch, 1);
    assert_int_equal(hp_amqp_queue_declare(ch, "q", 0, HP_AMQP_NO_ARGS, on_done, (void *)99), 0);
    hp_amqp_close(T.conn);
    res_t *r = &T.res[T.nres - 1];
    assert_int_equal(r->tag, 99);
    assert_int_equal(r->err, -ECANCELED);
    assert_int_equal(T.nconf, 1);
    assert_int_equal(T.conf[0].status, -ECANCELED);
    hp_amqp_close(T.conn); /* a second call does nothing */
    skip_publish(1);
    broker_expect_on(1, HP_AMQP_QUEUE_DECLARE);
    hp_amqp_method_t m = broker_expect_on(0, HP_AMQP_CONNECTION_CLOSE);
    assert_int_equal(m.connection_close.reply_code, 200);
    broker_expect_nothing();
    /* In flight from the broker before it saw the close. */
    hp_amqp_method_t ok = {.id = HP_AMQP_QUEUE_DECLARE_OK};
    ok.queue_declare_ok.queue = hp_amqp_str("q");
    broker_send(1, &ok);
    broker_confirm(1, true, 1, false);
    hp_amqp_method_t d = deliver_method("c", 1);
    broker_send_message(2, &d, NULL, "late", 4, 1);
    broker_heartbeat();
    assert_int_equal(T.closed, 0);
    assert_int_equal(T.ndlv, 0);
    assert_int_equal(T.nconf, 1);
    broker_send_id(0, HP_AMQP_CONNECTION_CLOSE_OK);
    PUMP_UNTIL(T.closed, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, 0);
    assert_true(T.conf[0].order < T.closed_r.seq);
    broker_expect_eof();
}

/* A broker that never answers the client's close: connect_timeout_ms,
 * then CLOSED (err 0: the user asked for it). */
static void test_close_without_close_ok(void **state)
{
    (void)state;
    start();
    hp_amqp_close(T.conn);
    broker_expect_on(0, HP_AMQP_CONNECTION_CLOSE);
    assert_closes_after(10000, 0);
    broker_expect_eof();
}

/* hp_amqp_close during the handshake: CLOSED with err 0. */
static void test_close_in_handshake(void **state)
{
    (void)state;
    connect_to_header();
    broker_send_start("PLAIN");
    broker_expect(HP_AMQP_CONNECTION_START_OK);
    hp_amqp_close(T.conn);
    PUMP_UNTIL(T.closed, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.ready, 0);
    assert_int_equal(T.closed_r.err, 0);
    broker_expect_eof();
}

/* Both sides close the connection at once: the client answers the
 * broker's close with close-ok and the connection ends with err 0 (the
 * user asked for it), whatever the broker's reason. */
static void test_close_crossing(void **state)
{
    (void)state;
    start();
    hp_amqp_close(T.conn);
    broker_expect_on(0, HP_AMQP_CONNECTION_CLOSE);
    hp_amqp_method_t cl = {.id = HP_AMQP_CONNECTION_CLOSE};
    cl.connection_close.reply_code = 320;
    cl.connection_close.reply_text = hp_amqp_str("CONNECTION_FORCED - shutdown");
    broker_send(0, &cl);
    broker_expect_on(0, HP_AMQP_CONNECTION_CLOSE_OK);
    PUMP_UNTIL(T.closed, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, 0);
    broker_expect_eof();
}

/* ---- callbacks that close what called them ---- */

static void close_conn_of(hp_amqp_channel_t *ch)
{
    hp_amqp_close(hp_amqp_channel_conn(ch));
}

static void close_conn_on_ready(void)
{
    hp_amqp_close(T.conn);
}

/* hp_amqp_close from a delivery, with more messages behind it in the
 * same read (from the buffer and copied): no delivery after it, close
 * goes out, close-ok ends it with err 0. */
static void slow_handler(hp_amqp_channel_t *ch)
{
    (void)ch;
    mclock_advance_ms(&H.clock, 3000); /* the handler held the loop 3 s */
}

/* Deliveries read at once whose handlers hold the loop longer in all than
 * the broker's patience: a heartbeat (and what the handlers wrote) leaves
 * between them once half an interval passed, not after the batch (pika
 * #93, #1104). Two heartbeats from one read: the timer sends at most one
 * an iteration. */
static void test_slow_handlers_keep_the_connection_talking(void **state)
{
    (void)state;
    start_heartbeat(10);
    consume_on("c", "c", 7);
    T.after_msg = slow_handler;
    static uint8_t wire[4096];
    static const uint8_t body[] = "work";
    size_t n = 0;
    for (uint64_t i = 1; i <= 4; i++) {
        hp_amqp_method_t m = deliver_method("c", i);
        n += msg_build(wire + n, sizeof wire - n, 1, &m, NULL, body, sizeof body - 1, 1);
    }
    broker_write(wire, n);
    client_sync();
    assert_int_equal(T.ndlv, 4);
    broker_expect_heartbeat(); /* after the second: 6 s */
    broker_expect_heartbeat(); /* after the fourth: 6 s more */
    broker_expect_nothing();
    assert_int_equal(T.closed, 0);
}

static void test_close_in_delivery(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) {
        if (round) {
            teardown(NULL);
            setup(NULL);
        }
        H.cfg.rbuf_size = round ? 4096 : 32768;
        hp_amqp_config_t cfg = test_cfg();
        cfg.frame_max = 4096;
        start_with(&cfg, 0, 0, 0);
        consume_on("c", "c", 7);
        T.after_msg = close_conn_of;
        static uint8_t wire[65536], body[6000];
        size_t n = 0;
        for (uint64_t i = 1; i <= 3; i++) {
            hp_amqp_method_t m = deliver_method("c", i);
            n += msg_build(wire + n, sizeof wire - n, 1, &m, NULL, body, round ? 6000 : 100, 2);
        }
        broker_write(wire, n);
        hp_amqp_method_t cl = broker_expect_on(0, HP_AMQP_CONNECTION_CLOSE);
        assert_int_equal(cl.connection_close.reply_code, 200);
        assert_int_equal(T.ndlv, 1);
        broker_send_id(0, HP_AMQP_CONNECTION_CLOSE_OK);
        PUMP_UNTIL(T.closed, 1000);
        assert_int_equal(T.closed, 1);
        assert_int_equal(T.closed_r.err, 0);
        assert_int_equal(T.ndlv, 1);
    }
}

static hp_amqp_channel_t *reentrant_ch;

static void close_channel_at_2(hp_amqp_channel_t *ch, uint64_t seq)
{
    if (seq == 2)
        assert_int_equal(hp_amqp_channel_close(ch, on_done, (void *)9), 0);
}

/* hp_amqp_channel_close from a confirm callback in the middle of a
 * multiple ack: every publish still settles exactly once. */
static void test_channel_close_in_confirm(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_confirm_channel(0);
    for (uint64_t s = 1; s <= 5; s++)
        publish_seq(ch, s);
    for (int i = 0; i < 5; i++)
        skip_publish(1);
    T.after_confirm = close_channel_at_2;
    broker_confirm(1, true, 4, true);
    broker_expect_on(1, HP_AMQP_CHANNEL_CLOSE);
    broker_send_id(1, HP_AMQP_CHANNEL_CLOSE_OK);
    assert_int_equal(T.res[T.nres - 1].tag, 9);
    assert_int_equal(T.nconf, 5);
    assert_each_once(5);
    assert_int_equal(T.conf[4].seq, 5);
    assert_int_equal(T.conf[4].status, -ECANCELED);
    close_gracefully();
}

static void close_conn_after_tag_1(hp_amqp_channel_t *ch, int tag)
{
    if (tag == 1)
        close_conn_of(ch);
}

/* hp_amqp_close from a call's completion with more calls pending behind
 * it: they fail with -ECANCELED, after it; close-ok ends it. */
static void test_close_in_done(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_channel();
    reentrant_ch = ch;
    for (int i = 1; i <= 3; i++)
        assert_int_equal(hp_amqp_queue_declare(ch, "q", 0, HP_AMQP_NO_ARGS, on_done,
                                               (void *)(intptr_t)i),
                         0);
    for (int i = 0; i < 3; i++)
        broker_expect_on(1, HP_AMQP_QUEUE_DECLARE);
    T.after_done = close_conn_after_tag_1;
    hp_amqp_method_t ok = {.id = HP_AMQP_QUEUE_DECLARE_OK};
    ok.queue_declare_ok.queue = hp_amqp_str("q");
    uint8_t buf[512];
    size_t n = 0;
    for (int i = 0; i < 3; i++) /* the three replies in one read */
        n += frame_method(buf + n, sizeof buf - n, 1, &ok);
    broker_write(buf, n);
    broker_expect_on(0, HP_AMQP_CONNECTION_CLOSE);
    assert_int_equal(T.nres, 4);
    assert_int_equal(T.res[1].err, 0);
    assert_int_equal(T.res[2].err, -ECANCELED);
    assert_int_equal(T.res[3].err, -ECANCELED);
    broker_send_id(0, HP_AMQP_CONNECTION_CLOSE_OK);
    PUMP_UNTIL(T.closed, 1000);
    assert_int_equal(T.closed_r.err, 0);
    assert_int_equal(T.nres, 4);
}

/* hp_amqp_close from READY: the connection closes as soon as it opened. */
static void test_close_in_ready(void **state)
{
    (void)state;
    T.on_ready = close_conn_on_ready;
    h_init(0);
    broker_listen();
    hp_amqp_config_t cfg = test_cfg();
    client_connect(&cfg);
    broker_handshake(0, 0, 0);
    broker_expect_on(0, HP_AMQP_CONNECTION_CLOSE);
    broker_send_id(0, HP_AMQP_CONNECTION_CLOSE_OK);
    PUMP_UNTIL(T.closed, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, 0);
}

static hp_amqp_channel_t *reopened;

static void reopen_channel(hp_amqp_channel_t *ch)
{
    assert_int_equal(hp_amqp_channel_open(hp_amqp_channel_conn(ch), on_done, (void *)8, &reopened),
                     0);
}

/* A new channel opened from the on_close of one the broker closed. */
static void test_reopen_in_on_close(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_channel();
    hp_amqp_channel_on_close(ch, on_chan_close, (void *)3);
    T.after_chan_close = reopen_channel;
    hp_amqp_method_t cl = {.id = HP_AMQP_CHANNEL_CLOSE};
    cl.channel_close.reply_code = 404;
    cl.channel_close.reply_text = hp_amqp_str("NOT_FOUND");
    broker_send(1, &cl);
    broker_expect_on(1, HP_AMQP_CHANNEL_CLOSE_OK);
    uint16_t id = hp_amqp_channel_id(reopened);
    broker_expect_on(id, HP_AMQP_CHANNEL_OPEN);
    broker_send_id(id, HP_AMQP_CHANNEL_OPEN_OK);
    assert_int_equal(T.res[T.nres - 1].tag, 8);
    assert_int_equal(T.res[T.nres - 1].err, 0);
    close_gracefully();
}

/* ---- memory ---- */

/* hp_amqp_connect with each of its allocations failing in turn: -ENOMEM
 * (-ENOBUFS from the engine's pools) and no connection; the pools may
 * keep what they grew, and the teardown checks that the worker gives
 * everything back. */
static void test_connect_out_of_memory(void **state)
{
    (void)state;
    h_init(0);
    broker_listen();
    hp_amqp_config_t cfg = test_cfg();
    int r = -ENOMEM;
    for (uint64_t n = 1; n < 50; n++) {
        hp_alloc_fail_after(n, 1);
        hp_amqp_conn_t *c = NULL;
        r = hp_amqp_connect(&H.w, &cfg, on_event, NULL, &c);
        hp_alloc_fail_after(0, 0);
        if (r == 0) {
            T.conn = c;
            break;
        }
        /* The engine's own pools say -ENOBUFS. */
        assert_true(r == -ENOMEM || r == -ENOBUFS);
        assert_int_equal(H.w.nconns, 0);
        assert_int_equal(T.closed + T.ready, 0); /* nothing happens */
    }
    assert_int_equal(r, 0);
    broker_handshake(0, 0, 0);
    close_gracefully();
}

/* Calls whose allocation fails return -ENOMEM having sent and queued
 * nothing, and the connection goes on. */
static void test_calls_out_of_memory(void **state)
{
    (void)state;
    start();
    hp_amqp_channel_t *ch = open_channel();
    hp_alloc_fail_after(1, 1);
    int r1 = hp_amqp_queue_declare(ch, "q", 0, HP_AMQP_NO_ARGS, on_done, (void *)1);
    int r2 = hp_amqp_confirm_select(ch, 0, on_done, (void *)2);
    hp_amqp_channel_t *other = NULL;
    int r3 = hp_amqp_channel_open(T.conn, on_done, (void *)3, &other);
    int r4 = hp_amqp_consume(ch, "q", NULL, 0, HP_AMQP_NO_ARGS, on_msg, NULL, on_done, (void *)4);
    hp_alloc_fail_after(0, 0);
    assert_int_equal(r1, -ENOMEM);
    assert_int_equal(r2, -ENOMEM);
    assert_int_equal(r3, -ENOMEM);
    assert_int_equal(r4, -ENOMEM);
    assert_null(other);
    broker_expect_nothing();
    assert_int_equal(T.nres, 1);
    /* The same calls work once memory is back. */
    assert_int_equal(hp_amqp_queue_declare(ch, "q", 0, HP_AMQP_NO_ARGS, on_done, (void *)1), 0);
    broker_expect_on(1, HP_AMQP_QUEUE_DECLARE);
    other = open_channel();
    assert_int_not_equal(hp_amqp_channel_id(other), 1);
    close_gracefully();
}

/* ---- URIs and broker addresses ---- */

/* hp_amqp_url_parse on a config starting as `base`: the result, and *cfg
 * what it made (why in *err). */
static int parse(const char *url, hp_amqp_config_t *cfg, const char **err)
{
    static char buf[4096];
    *err = NULL;
    return hp_amqp_url_parse(url, cfg, buf, sizeof buf, err);
}

static void assert_parsed(const char *url, const char *user, const char *password,
                          const char *host, uint16_t port, const char *addresses,
                          const char *vhost)
{
    hp_amqp_config_t c = HP_AMQP_CONFIG_DEFAULT;
    c.addresses = "stale:1"; /* a single host clears what was there */
    const char *why;
    int r = parse(url, &c, &why);
    if (r != 0)
        fail_msg("%s: %d %s", url, r, why ? why : "");
    assert_string_equal(c.user, user);
    assert_string_equal(c.password, password);
    assert_string_equal(c.host, host);
    assert_int_equal(c.port, port);
    if (addresses)
        assert_string_equal(c.addresses, addresses);
    else
        assert_null(c.addresses);
    assert_string_equal(c.vhost, vhost);
}

static void assert_refused(const char *url, const char *reason)
{
    hp_amqp_config_t c = HP_AMQP_CONFIG_DEFAULT;
    const char *why;
    if (parse(url, &c, &why) != -EINVAL)
        fail_msg("%s: taken", url);
    assert_non_null(why);
    if (!strstr(why, reason))
        fail_msg("%s: '%s', not '%s'", url, why, reason);
    assert_string_equal(c.host, "127.0.0.1"); /* nothing changed */
}

/* Every form taken before several hosts still parses as it did; the
 * comma form gives the list with a port each (the URI's default for a
 * host without one, not the first's) and the first as host and port. */
static void test_url_parse(void **state)
{
    (void)state;
    assert_parsed("amqp://", "guest", "guest", "127.0.0.1", 5672, NULL, "/");
    assert_parsed("amqp://u:p@h:1234/v", "u", "p", "h", 1234, NULL, "v");
    assert_parsed("amqp://h", "guest", "guest", "h", 5672, NULL, "/");
    assert_parsed("amqp://h/", "guest", "guest", "h", 5672, NULL, "/");
    assert_parsed("amqp://h/%2F", "guest", "guest", "h", 5672, NULL, "/");
    assert_parsed("amqp://%75ser@h%2Dx/v%20w", "user", "guest", "h-x", 5672, NULL, "v w");
    assert_parsed("amqp://u:@h", "u", "", "h", 5672, NULL, "/");
    assert_parsed("amqp://[::1]:5673/x?heartbeat=5", "guest", "guest", "::1", 5673, NULL, "x");
    assert_parsed("amqp://[::1]", "guest", "guest", "::1", 5672, NULL, "/");
    assert_parsed("amqp://:5673", "guest", "guest", "127.0.0.1", 5673, NULL, "/");
    assert_parsed("amqp://u:p@h1:5672,h2:5673/v", "u", "p", "h1", 5672, "h1:5672,h2:5673", "v");
    assert_parsed("amqp://h1:5673,h2#frag", "guest", "guest", "h1", 5673, "h1:5673,h2:5672",
                  "/");
    assert_parsed("amqp://u:a,b@h1,[::1]:5674,h%33/%2F", "u", "a,b", "h1", 5672,
                  "h1:5672,[::1]:5674,h3:5672", "/");
    assert_parsed("amqp://%3A%3A2,h", "guest", "guest", "::2", 5672, "[::2]:5672,h:5672", "/");

    assert_refused("http://h", "not an amqp:// URI");
    assert_refused("amqps://h", "amqps");
    assert_refused("amqp://h:0", "a bad port");
    assert_refused("amqp://h:x/", "a bad port");
    assert_refused("amqp://h:70000", "a bad port");
    assert_refused("amqp://h:/", "a bad port");
    assert_refused("amqp://[::1", "without ']'");
    assert_refused("amqp://[::1]x", "a bad host");
    assert_refused("amqp://u%zz@h", "percent-escape");
    assert_refused("amqp://h1,,h2", "an empty host");
    assert_refused("amqp://h1,", "an empty host");
    assert_refused("amqp://,h1", "an empty host");
    assert_refused("amqp://h1,:5673", "an empty host");
    assert_refused("amqp://h1,h2:0", "a bad port");
    assert_refused("amqp://h1,h%2Cx", "a bad host");
    assert_refused("amqp://h1,[::1", "without ']'");
    char many[1024] = "amqp://h";
    for (int i = 0; i < HP_AMQP_MAX_ADDRESSES; i++)
        strcat(many, ",h");
    assert_refused(many, "more than 64 hosts");
    many[strlen(many) - 2] = '\0'; /* 64: taken */
    hp_amqp_config_t c = HP_AMQP_CONFIG_DEFAULT;
    const char *why;
    assert_int_equal(parse(many, &c, &why), 0);

    /* Too small a buffer: -ENOSPC, cfg untouched; the size amqp.h names
     * is enough. */
    const char *url = "amqp://user:pass@host1,host2:5673,[::1]/vhost";
    char small[24];
    c = HP_AMQP_CONFIG_DEFAULT;
    assert_int_equal(hp_amqp_url_parse(url, &c, small, sizeof small, &why), -ENOSPC);
    assert_string_equal(c.host, "127.0.0.1");
    assert_null(c.addresses);
    char *exact = malloc(HP_AMQP_URL_BUFSIZE(strlen(url)));
    assert_int_equal(hp_amqp_url_parse(url, &c, exact, HP_AMQP_URL_BUFSIZE(strlen(url)), &why), 0);
    assert_string_equal(c.addresses, "host1:5672,host2:5673,[::1]:5672");
    free(exact);
}

/* Malformed address lists are refused at connect, nothing left behind. */
static void test_addresses_einval(void **state)
{
    (void)state;
    h_init(0);
    const char *bad[] = {"", "h:0", "h1,,h2", "h1, ", "[::1", "[::1]x", "h:99999", "h]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hp_amqp_config_t cfg = test_cfg();
        cfg.addresses = bad[i];
        hp_amqp_conn_t *c = NULL;
        if (hp_amqp_connect(&H.w, &cfg, on_event, NULL, &c) != -EINVAL)
            fail_msg("'%s' taken", bad[i]);
        assert_null(c);
    }
    char many[512] = "h";
    for (int i = 0; i < HP_AMQP_MAX_ADDRESSES; i++)
        strcat(many, ",h");
    hp_amqp_config_t cfg = test_cfg();
    cfg.addresses = many;
    hp_amqp_conn_t *c = NULL;
    assert_int_equal(hp_amqp_connect(&H.w, &cfg, on_event, NULL, &c), -EINVAL);
    /* No host at all is refused too; addresses alone need none. */
    cfg = test_cfg();
    cfg.host = NULL;
    assert_int_equal(hp_amqp_connect(&H.w, &cfg, on_event, NULL, &c), -EINVAL);
}

/* The first address refuses: the second is dialed at once (the clock
 * does not move), and hp_amqp_address names it. A host without a port
 * in the list takes cfg.port. */
static void test_addresses_first_refuses(void **state)
{
    (void)state;
    h_init(0);
    broker_listen();
    char list[128];
    snprintf(list, sizeof list, " 127.0.0.1:%u , 127.0.0.1, 127.0.0.1:1", refused_port());
    hp_amqp_config_t cfg = test_cfg();
    cfg.addresses = list;
    client_connect(&cfg);
    uint32_t index = 9;
    hp_amqp_address(T.conn, &index);
    assert_int_equal(index, 0);
    broker_handshake(0, 0, 0);
    char want[32];
    snprintf(want, sizeof want, "127.0.0.1:%u", B.port);
    assert_string_equal(hp_amqp_address(T.conn, &index), want);
    assert_int_equal(index, 1);
    close_gracefully();
}

/* Every address refuses: one CLOSED, with the last one's error, its
 * reply text naming it. */
static void test_addresses_all_fail(void **state)
{
    (void)state;
    h_init(0);
    char list[128];
    uint16_t p1 = refused_port(), p2 = refused_port();
    snprintf(list, sizeof list, "127.0.0.1:%u,127.0.0.1:%u", p1, p2);
    hp_amqp_config_t cfg = test_cfg();
    cfg.addresses = list;
    client_connect(&cfg);
    PUMP_UNTIL(T.closed, 1000);
    pump_for(20);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.ready, 0);
    assert_int_equal(T.closed_r.err, -ECONNREFUSED);
    assert_closed_at(p2);
}

/* A broker that accepts but never answers is timed out after
 * connect_timeout_ms (per address, not for the round): the next address
 * is dialed at once and has a whole timeout of its own. */
static void test_addresses_timeout_moves_on(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = test_cfg();
    int l2;
    char list[128];
    two_brokers(&cfg, &l2, list, sizeof list);
    cfg.connect_timeout_ms = 5000;
    client_connect(&cfg);
    broker_accept();
    broker_expect_header();
    tick(5000);
    broker_expect_eof();
    assert_int_equal(T.closed, 0);
    broker_move(l2);
    broker_accept();
    broker_expect_header();
    tick(4999); /* the second address's own deadline */
    broker_login_to_open();
    broker_send_id(0, HP_AMQP_CONNECTION_OPEN_OK);
    assert_int_equal(T.ready, 1);
    assert_int_equal(T.closed, 0);
    close_gracefully();
}

/* A refused login ends the round: the cluster's other nodes share the
 * users, and the next address is not dialed. */
static void test_addresses_403_ends_round(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = test_cfg();
    int l2;
    char list[128];
    two_brokers(&cfg, &l2, list, sizeof list);
    client_connect(&cfg);
    broker_accept();
    broker_expect_header();
    broker_send_start("PLAIN");
    broker_expect_on(0, HP_AMQP_CONNECTION_START_OK);
    hp_amqp_method_t cl = {.id = HP_AMQP_CONNECTION_CLOSE};
    cl.connection_close.reply_code = 403;
    cl.connection_close.reply_text = hp_amqp_str("ACCESS_REFUSED");
    broker_send(0, &cl);
    PUMP_UNTIL(T.closed == 1, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.code, 403);
    assert_string_equal(T.closed_r.text, "ACCESS_REFUSED");
    pump_for(20);
    int fd = accept4(l2, NULL, NULL, SOCK_NONBLOCK);
    if (fd >= 0)
        fail_msg("the second address was dialed after a 403");
    close(l2);
}

/* connection.blocked longer than blocked_timeout_ms: closed at once
 * (the broker reads nothing, not even connection.close) with -ETIMEDOUT
 * and the reason; pending calls fail with it. */
static void test_blocked_timeout(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = test_cfg();
    cfg.blocked_timeout_ms = 30000;
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *ch = open_channel();
    assert_int_equal(hp_amqp_queue_declare(ch, "q", 0, HP_AMQP_NO_ARGS, on_done, (void *)7), 0);
    broker_expect_on(1, HP_AMQP_QUEUE_DECLARE);
    broker_send_id(0, HP_AMQP_CONNECTION_BLOCKED);
    assert_int_equal(T.blocked, 1);
    assert_closes_after(30000, -ETIMEDOUT);
    assert_int_equal(T.closed_r.code, 0);
    assert_string_equal(T.closed_r.text, "blocked by the broker for longer than 30000 ms");
    assert_int_equal(T.res[T.nres - 1].tag, 7);
    assert_int_equal(T.res[T.nres - 1].err, -ETIMEDOUT);
    broker_expect_eof();
}

/* Unblocked in time: nothing happens; blocked again, the timeout counts
 * from then. Without a timeout, a blocked connection waits for ever. */
static void test_blocked_timeout_unblocked(void **state)
{
    (void)state;
    hp_amqp_config_t cfg = test_cfg();
    cfg.blocked_timeout_ms = 30000;
    start_with(&cfg, 0, 0, 0);
    broker_send_id(0, HP_AMQP_CONNECTION_BLOCKED);
    tick(20000);
    broker_send_id(0, HP_AMQP_CONNECTION_UNBLOCKED);
    assert_int_equal(T.unblocked, 1);
    tick(20000);
    broker_send_id(0, HP_AMQP_CONNECTION_BLOCKED);
    tick(29999);
    assert_int_equal(T.closed, 0);
    broker_send_id(0, HP_AMQP_CONNECTION_UNBLOCKED);
    tick(60000);
    assert_int_equal(T.closed, 0);
    T.conn->cfg.blocked_timeout_ms = 0; /* as if configured so */
    broker_send_id(0, HP_AMQP_CONNECTION_BLOCKED);
    tick(3600 * 1000);
    assert_int_equal(T.closed, 0);
    close_gracefully();
}

/* Output the broker does not read while it has blocked the connection:
 * the blocked timeout governs, not the worker's write timeout (3 s in
 * the harness), which takes over again once unblocked. */
static void blocked_stall(uint64_t blocked_timeout_ms)
{
    B.rcvbuf = 16384;
    hp_amqp_config_t cfg = test_cfg();
    cfg.blocked_timeout_ms = blocked_timeout_ms;
    start_with(&cfg, 0, 0, 0);
    hp_amqp_channel_t *ch = open_channel();
    /* A fixed send buffer: the kernel's would grow as it fills. */
    int sndbuf = 4096;
    setsockopt(hp_conn_fd(T.conn->c), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    /* Publishes until the output waits for good. Small
     * messages keep what waits under the high water mark, so the client
     * still reads (connection.blocked, unblocked). */
    static uint8_t body[100];
    hp_amqp_msg_t msg = {.routing_key = "q", .body = body, .len = sizeof body};
    for (int quiet = 0, n = 0; quiet < 3; n++) {
        assert_true(n < 100000);
        if (hp_amqp_publish(ch, &msg, NULL, NULL, NULL) == 0) {
            quiet = 0;
            continue;
        }
        pump_for(20);
        quiet += (T.conn->c->flags & HP_CONN_F_WRITE_WAIT) != 0;
    }
    assert_false(T.conn->c->flags & HP_CONN_F_PAUSED);
    broker_send_id(0, HP_AMQP_CONNECTION_BLOCKED);
    assert_int_equal(T.blocked, 1);
    tick(H.cfg.write_timeout_ms * 3);
    assert_int_equal(T.closed, 0);
    assert_true(T.conn->c->flags & HP_CONN_F_WRITE_WAIT); /* still stalled */
}

static void test_blocked_stall_timeout(void **state)
{
    (void)state;
    blocked_stall(20000);
    tick(20000 - H.cfg.write_timeout_ms * 3);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, -ETIMEDOUT);
}

static void test_blocked_stall_unblocked(void **state)
{
    (void)state;
    blocked_stall(0);
    broker_send_id(0, HP_AMQP_CONNECTION_UNBLOCKED);
    tick(H.cfg.write_timeout_ms - 1);
    assert_int_equal(T.closed, 0);
    tick(1);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, -ECONNRESET);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    hp_log_set_level(HP_LOG_ERROR);
    /* TEST_CLIENT_FILTER=test_get* runs a subset. */
    if (getenv("TEST_CLIENT_FILTER"))
        cmocka_set_test_filter(getenv("TEST_CLIENT_FILTER"));
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_handshake),
        T_(test_negotiation),
        T_(test_no_plain),
        T_(test_version_mismatch),
        T_(test_version_mismatch_split),
        T_(test_handshake_refused),
        T_(test_handshake_timeout),
        T_(test_handshake_timeout_after_start),
        T_(test_connection_refused),
        T_(test_connect_einval),
        T_(test_handshake_other_failures),
        T_(test_handshake_long_credentials),
        T_(test_close_while_dialing),
        T_(test_heartbeat_sent_and_broker_timeout),
        T_(test_heartbeat_broker_traffic_keeps_alive),
        T_(test_heartbeat_unread_bytes_are_traffic),
        T_(test_slow_handlers_keep_the_connection_talking),
        T_(test_no_heartbeat),
        T_(test_calls_before_open_ok),
        T_(test_channel_closed_by_broker),
        T_(test_channel_close_by_client),
        T_(test_channel_numbers),
        T_(test_channel_open_refused),
        T_(test_channel_flow),
        T_(test_channel_close_while_opening),
        T_(test_channel_close_crossing),
        T_(test_confirms),
        T_(test_publish_without_confirms),
        T_(test_confirm_window),
        T_(test_confirm_close_cancels),
        T_(test_broker_vanishes),
        T_(test_publish_batch),
        T_(test_publish_batch_room),
        T_(test_publish_frames),
        T_(test_publish_einval),
        T_(test_publish_from_timer),
        T_(test_backpressure_small),
        T_(test_backpressure_large),
        T_(test_consume_small_buffer),
        T_(test_consume_large_buffer),
        T_(test_consume_large_frames),
        T_(test_consume_large_header),
        T_(test_consume_overhead_decides),
        T_(test_split_fast_path),
        T_(test_split_assembled),
        T_(test_interleaved_channels),
        T_(test_cancel),
        T_(test_get),
        T_(test_acks_on_the_wire),
        T_(test_return),
        T_(test_bad_frame_end),
        T_(test_header_without_method),
        T_(test_body_on_channel_zero),
        T_(test_frame_for_closed_channel),
        T_(test_ack_never_published),
        T_(test_ack_without_confirm_mode),
        T_(test_reply_to_nothing),
        T_(test_unknown_method),
        T_(test_frame_too_large),
        T_(test_error_then_wait_for_close_ok),
        T_(test_message_too_large),
        T_(test_message_malformed),
        T_(test_blocked),
        T_(test_closed_by_broker),
        T_(test_close_by_client),
        T_(test_close_without_close_ok),
        T_(test_close_in_handshake),
        T_(test_close_crossing),
        T_(test_close_in_delivery),
        T_(test_channel_close_in_confirm),
        T_(test_close_in_done),
        T_(test_close_in_ready),
        T_(test_reopen_in_on_close),
        T_(test_connect_out_of_memory),
        T_(test_calls_out_of_memory),
        T_(test_url_parse),
        T_(test_addresses_einval),
        T_(test_addresses_first_refuses),
        T_(test_addresses_all_fail),
        T_(test_addresses_timeout_moves_on),
        T_(test_addresses_403_ends_round),
        T_(test_blocked_timeout),
        T_(test_blocked_timeout_unblocked),
        T_(test_blocked_stall_timeout),
        T_(test_blocked_stall_unblocked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
