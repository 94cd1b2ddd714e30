/*
 * test_pool.c - unit tests for the AMQP connection and channel pools
 * (src/amqp/pool.c) against a fake broker that answers by itself.
 *
 * The pool opens several connections, so the scripted one-connection
 * broker of amqp_harness.h does not fit: here the broker (F) accepts
 * every connection on the harness's listening socket and answers each
 * method as RabbitMQ would (the handshake, channel.open, confirm.select,
 * basic.qos, basic.consume, the closes), recording per connection its
 * name (connection_name) and what it was asked. A test steps the worker
 * and the broker together (run_until), kills a connection (fb_kill),
 * closes a channel from the broker's side, or delivers a message, and
 * moves the worker's manual clock for the pool's timers (tick). The
 * harness's counting allocator and teardown check that the pool and
 * every connection went back; hp_amqp_pool_validate runs after each
 * step.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "amqp_harness.h"
#include "hotpath/amqp_pool.h"

/* ---- the fake broker: every connection answered automatically ---- */

enum { FB_MAX = 8 };

typedef struct fconn {
    int fd;                      /* -1 once closed */
    uint8_t buf[65536];
    size_t len;
    bool header;                 /* the protocol header was read */
    char name[128];              /* connection_name from start-ok */
    int channel_opens, confirms, qos, closes;
    int consumes;                /* basic.consume received */
    uint16_t consume_channel;    /* of the last one */
    char consume_queue[64];
} fconn_t;

static struct {
    fconn_t c[FB_MAX];
    int n;
    uint16_t channel_max;        /* tune's; 0: no limit */
} F;

static void fb_write(fconn_t *fc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0 && fc->fd >= 0) {
        ssize_t n = write(fc->fd, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else {
            assert_true(n < 0 && errno == EAGAIN);
            step(1);
        }
    }
}

static void fb_send(fconn_t *fc, uint16_t ch, const hp_amqp_method_t *m)
{
    uint8_t buf[4096];
    fb_write(fc, buf, frame_method(buf, sizeof buf, ch, m));
}

static void fb_close_fd(fconn_t *fc)
{
    if (fc->fd >= 0)
        close(fc->fd);
    fc->fd = -1;
}

/* What the broker says to one method of the client. */
static void fb_answer(fconn_t *fc, uint16_t ch, const hp_amqp_method_t *m)
{
    hp_amqp_method_t a = {0};
    switch (m->id) {
    case HP_AMQP_CONNECTION_START_OK: {
        hp_amqp_value_t v;
        if (hp_amqp_table_get(m->connection_start_ok.client_properties, "connection_name", &v) == 0)
            copy_bytes(fc->name, sizeof fc->name, v.bytes);
        a.id = HP_AMQP_CONNECTION_TUNE;
        a.connection_tune.channel_max = F.channel_max;
        a.connection_tune.frame_max = 131072;
        break;
    }
    case HP_AMQP_CONNECTION_OPEN:
        a.id = HP_AMQP_CONNECTION_OPEN_OK;
        break;
    case HP_AMQP_CONNECTION_CLOSE:
        fc->closes++;
        a.id = HP_AMQP_CONNECTION_CLOSE_OK;
        break;
    case HP_AMQP_CHANNEL_OPEN:
        fc->channel_opens++;
        a.id = HP_AMQP_CHANNEL_OPEN_OK;
        break;
    case HP_AMQP_CHANNEL_CLOSE:
        a.id = HP_AMQP_CHANNEL_CLOSE_OK;
        break;
    case HP_AMQP_CONFIRM_SELECT:
        fc->confirms++;
        a.id = HP_AMQP_CONFIRM_SELECT_OK;
        break;
    case HP_AMQP_BASIC_QOS:
        fc->qos++;
        a.id = HP_AMQP_BASIC_QOS_OK;
        break;
    case HP_AMQP_BASIC_CONSUME:
        fc->consumes++;
        fc->consume_channel = ch;
        copy_bytes(fc->consume_queue, sizeof fc->consume_queue, m->basic_consume.queue);
        a.id = HP_AMQP_BASIC_CONSUME_OK;
        a.basic_consume_ok.consumer_tag = hp_amqp_str("ctag");
        break;
    default: /* close-ok, acks ...: nothing to say */
        return;
    }
    fb_send(fc, ch, &a);
}

/* Accepts new connections and answers what every connection sent. */
static void fb_poll(void)
{
    int fd;
    while (F.n < FB_MAX && (fd = accept4(B.lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
        fconn_t *fc = &F.c[F.n++];
        memset(fc, 0, sizeof *fc);
        fc->fd = fd;
    }
    for (int i = 0; i < F.n; i++) {
        fconn_t *fc = &F.c[i];
        while (fc->fd >= 0) {
            ssize_t n = read(fc->fd, fc->buf + fc->len, sizeof fc->buf - fc->len);
            if (n == 0 || (n < 0 && errno != EAGAIN)) {
                fb_close_fd(fc);
                break;
            }
            if (n < 0)
                break;
            fc->len += (size_t)n;
        }
        if (!fc->header && fc->len >= HP_AMQP_PROTOCOL_HEADER_LEN) {
            fc->header = true;
            memmove(fc->buf, fc->buf + 8, fc->len - 8);
            fc->len -= 8;
            hp_amqp_method_t s = {.id = HP_AMQP_CONNECTION_START};
            s.connection_start.version_minor = 9;
            s.connection_start.mechanisms = hp_amqp_str("PLAIN");
            s.connection_start.locales = hp_amqp_str("en_US");
            fb_send(fc, 0, &s);
        }
        hp_amqp_frame_t f;
        long used;
        while (fc->header && (used = hp_amqp_frame_parse(fc->buf, fc->len, 0, &f)) > 0) {
            hp_amqp_method_t m;
            if (f.type == HP_AMQP_FRAME_METHOD &&
                hp_amqp_method_decode(f.payload.ptr, f.payload.len, &m) == 0)
                fb_answer(fc, f.channel, &m);
            memmove(fc->buf, fc->buf + used, fc->len - (size_t)used);
            fc->len -= (size_t)used;
        }
    }
}

/* The broker drops connection i (a TCP reset, as a lost node). */
static void fb_kill(int i)
{
    fb_close_fd(&F.c[i]);
}

/* The index of the connection whose name is `name`, or -1. */
static int fb_find(const char *name)
{
    for (int i = 0; i < F.n; i++) {
        if (strcmp(F.c[i].name, name) == 0)
            return i;
    }
    return -1;
}

static int fb_open(void)
{
    int n = 0;
    for (int i = 0; i < F.n; i++)
        n += F.c[i].fd >= 0;
    return n;
}

/* ---- the pool under test ---- */

static hp_amqp_pool_t *P;
static bool P_done;

/* Acquire callbacks, in the order they ran. */
static struct {
    int tag[64];
    hp_amqp_channel_t *ch[64];
    int err[64];
    int n;
} A;

static void on_acquired(hp_amqp_pool_t *p, hp_amqp_channel_t *ch, int err, void *arg)
{
    assert_ptr_equal(p, P);
    assert_true(A.n < 64);
    A.tag[A.n] = (int)(intptr_t)arg;
    A.ch[A.n] = ch;
    A.err[A.n] = err;
    A.n++;
    assert_true((ch != NULL) == (err == 0));
}

static void on_pool_done(void *arg)
{
    (void)arg;
    P_done = true;
}

#define RUN_UNTIL(cond)                                                        \
    do {                                                                       \
        uint64_t dl_ = mono_ms() + NH_PATIENCE * 2000;                         \
        while (!(cond) && mono_ms() < dl_) {                                   \
            fb_poll();                                                         \
            step(1);                                                           \
            if (P && !P_done)                                                  \
                assert_int_equal(hp_amqp_pool_validate(P), 0);                 \
        }                                                                      \
        assert_true(cond);                                                     \
    } while (0)

/* Steps worker and broker a while, for what must not happen. */
static void settle(void)
{
    for (int i = 0; i < 20; i++) {
        fb_poll();
        step(1);
    }
    assert_int_equal(hp_amqp_pool_validate(P), 0);
}

/* Moves the worker's clock on by ms (the pool's timers) and settles. */
static void tick_settle(uint64_t ms)
{
    tick(ms);
    settle();
}

static hp_amqp_pool_config_t pool_cfg(void)
{
    hp_amqp_pool_config_t c = HP_AMQP_POOL_CONFIG_DEFAULT;
    c.amqp = test_cfg();
    c.amqp.name = "t";
    c.publish = (hp_amqp_pool_side_config_t){.min_conns = 1, .max_conns = 2, .channels = 4};
    c.consume = (hp_amqp_pool_side_config_t){.min_conns = 1, .max_conns = 2, .channels = 4};
    return c;
}

static hp_amqp_pool_stats_t stats(int side)
{
    hp_amqp_pool_stats_t s;
    hp_amqp_pool_stats(P, side, &s);
    return s;
}

static void pool_start(const hp_amqp_pool_config_t *c)
{
    /* The idle test moves the clock seconds on: no write timeout then. */
    H.cfg.write_timeout_ms = 600000;
    h_init(0);
    broker_listen();
    hp_amqp_pool_config_t cfg = *c;
    cfg.amqp.port = B.port;
    memset(&F, 0, sizeof F);
    memset(&A, 0, sizeof A);
    P_done = false;
    assert_int_equal(hp_amqp_pool_new(&H.w, &cfg, &P), 0);
}

static void pool_finish(void)
{
    hp_amqp_pool_close(P, on_pool_done, NULL);
    RUN_UNTIL(P_done);
    P = NULL;
    for (int i = 0; i < F.n; i++)
        fb_close_fd(&F.c[i]);
}

/* Acquires a channel of `side` that must come at once. */
static hp_amqp_channel_t *acquire_now(int side)
{
    hp_amqp_channel_t *ch = NULL;
    assert_int_equal(hp_amqp_pool_channel_acquire(P, side, on_acquired, NULL, &ch), 1);
    assert_non_null(ch);
    return ch;
}

/* Acquires a channel of `side` that has to wait (tag `tag`), and waits. */
static hp_amqp_channel_t *acquire_wait(int side, int tag)
{
    hp_amqp_channel_t *ch = NULL;
    int before = A.n;
    assert_int_equal(hp_amqp_pool_channel_acquire(P, side, on_acquired, (void *)(intptr_t)tag, &ch),
                     0);
    assert_null(ch);
    RUN_UNTIL(A.n == before + 1);
    assert_int_equal(A.tag[before], tag);
    assert_int_equal(A.err[before], 0);
    return A.ch[before];
}

/* ---- tests ---- */

/* min_conns of each side open at once, named after side and worker; a
 * publisher channel and a consumer land on connections of their own. */
static void test_opens_min_and_separates_sides(void **state)
{
    (void)state;
    hp_amqp_pool_config_t c = pool_cfg();
    c.publish.min_conns = 2;
    c.publish.max_conns = 3;
    pool_start(&c);
    RUN_UNTIL(stats(HP_AMQP_POOL_PUBLISH).ready == 2 && stats(HP_AMQP_POOL_CONSUME).ready == 1);
    settle();
    assert_int_equal(F.n, 3); /* min_conns, no more */
    int p1 = fb_find("t publish w0 #1"), p2 = fb_find("t publish w0 #2");
    int c1 = fb_find("t consume w0 #1");
    assert_true(p1 >= 0 && p2 >= 0 && c1 >= 0);

    hp_amqp_channel_t *ch = acquire_wait(HP_AMQP_POOL_PUBLISH, 1);
    assert_int_equal(F.c[p1].channel_opens + F.c[p2].channel_opens, 1);
    assert_int_equal(F.c[p1].confirms + F.c[p2].confirms, 1); /* confirm mode */
    assert_int_equal(F.c[c1].channel_opens, 0);

    assert_int_equal(hp_amqp_pool_consume(P, "jobs", 10, 0, HP_AMQP_NO_ARGS, on_msg,
                                          (void *)(intptr_t)7, on_done, (void *)(intptr_t)8),
                     0);
    RUN_UNTIL(T.nres == 1);
    assert_int_equal(T.res[0].tag, 8);
    assert_int_equal(T.res[0].err, 0);
    assert_string_equal(T.res[0].ctag, "ctag");
    assert_int_equal(F.c[c1].consumes, 1);
    assert_int_equal(F.c[c1].qos, 1);
    assert_string_equal(F.c[c1].consume_queue, "jobs");
    assert_int_equal(F.c[p1].consumes + F.c[p2].consumes, 0);
    assert_int_equal(stats(HP_AMQP_POOL_CONSUME).consumers, 1);

    /* A delivery reaches the consumer's callback. */
    hp_amqp_method_t d = {.id = HP_AMQP_BASIC_DELIVER};
    d.basic_deliver.consumer_tag = hp_amqp_str("ctag");
    d.basic_deliver.delivery_tag = 1;
    d.basic_deliver.routing_key = hp_amqp_str("jobs");
    uint8_t buf[1024];
    fb_write(&F.c[c1], buf,
             msg_build(buf, sizeof buf, F.c[c1].consume_channel, &d, NULL, "hi", 2, 1));
    RUN_UNTIL(T.ndlv == 1);
    assert_int_equal(T.dlv[0].tag, 7);
    assert_int_equal(T.dlv[0].len, 2);

    assert_int_equal(hp_amqp_pool_channel_release(P, ch), 0);
    assert_int_equal(hp_amqp_pool_channel_release(P, ch), -ENOENT); /* not lent any more */
    pool_finish();
}

/* Channels open on demand up to `channels` per connection, then a new
 * connection up to max_conns, never beyond; a channel given back is lent
 * again (no new channel.open) to the first waiter. */
static void test_grows_to_max_and_reuses_channels(void **state)
{
    (void)state;
    hp_amqp_pool_config_t c = pool_cfg();
    c.publish = (hp_amqp_pool_side_config_t){.min_conns = 1, .max_conns = 2, .channels = 2};
    c.consume.min_conns = 0;
    pool_start(&c);
    RUN_UNTIL(stats(HP_AMQP_POOL_PUBLISH).ready == 1);
    hp_amqp_channel_t *ch[4];
    for (int i = 0; i < 4; i++)
        ch[i] = acquire_wait(HP_AMQP_POOL_PUBLISH, i);
    assert_int_equal(F.n, 2);
    assert_int_equal(F.c[0].channel_opens, 2);
    assert_int_equal(F.c[1].channel_opens, 2);
    assert_ptr_not_equal(hp_amqp_channel_conn(ch[0]), hp_amqp_channel_conn(ch[3]));

    /* Full: the next one waits, and no third connection is opened. */
    hp_amqp_channel_t *got = NULL;
    assert_int_equal(hp_amqp_pool_channel_acquire(P, HP_AMQP_POOL_PUBLISH, on_acquired,
                                                  (void *)(intptr_t)10, &got),
                     0);
    settle();
    assert_int_equal(F.n, 2);
    assert_int_equal(A.n, 4);
    hp_amqp_pool_stats_t s = stats(HP_AMQP_POOL_PUBLISH);
    assert_int_equal(s.waiters, 1);
    assert_int_equal(s.channels_lent, 4);
    assert_int_equal(s.ready, 2);

    assert_int_equal(hp_amqp_pool_channel_release(P, ch[2]), 0);
    RUN_UNTIL(A.n == 5);
    assert_int_equal(A.tag[4], 10);
    assert_ptr_equal(A.ch[4], ch[2]); /* the same channel, lent again */
    settle();
    assert_int_equal(F.c[0].channel_opens + F.c[1].channel_opens, 4);

    /* Given back, a channel is lent at once by the next acquire. */
    assert_int_equal(hp_amqp_pool_channel_release(P, ch[0]), 0);
    assert_ptr_equal(acquire_now(HP_AMQP_POOL_PUBLISH), ch[0]);
    for (int i = 0; i < 4; i++)
        assert_int_equal(hp_amqp_pool_channel_release(P, ch[i]), 0);
    s = stats(HP_AMQP_POOL_PUBLISH);
    assert_int_equal(s.channels_idle, 4);
    assert_int_equal(s.channels_lent, 0);
    assert_int_equal(s.acquired, 6);
    pool_finish();
}

/* Waiters are served first come first served; max_waiters bound them
 * (-EAGAIN), wait_timeout_ms ends a wait (-ETIMEDOUT), closing the pool
 * ends the rest (-ECANCELED). */
static void test_waiters_fifo_bounded_and_timed(void **state)
{
    (void)state;
    hp_amqp_pool_config_t c = pool_cfg();
    c.publish = (hp_amqp_pool_side_config_t){.min_conns = 1, .max_conns = 1, .channels = 1};
    c.consume.min_conns = 0;
    c.max_waiters = 2;
    c.wait_timeout_ms = 1000;
    pool_start(&c);
    hp_amqp_channel_t *ch = acquire_wait(HP_AMQP_POOL_PUBLISH, 0);
    hp_amqp_channel_t *out = NULL;
    for (int i = 1; i <= 2; i++)
        assert_int_equal(hp_amqp_pool_channel_acquire(P, HP_AMQP_POOL_PUBLISH, on_acquired,
                                                      (void *)(intptr_t)i, &out),
                         0);
    assert_int_equal(hp_amqp_pool_channel_acquire(P, HP_AMQP_POOL_PUBLISH, on_acquired,
                                                  (void *)(intptr_t)3, &out),
                     -EAGAIN);
    assert_int_equal(stats(HP_AMQP_POOL_PUBLISH).refused, 1);
    settle();
    assert_int_equal(A.n, 1);

    assert_int_equal(hp_amqp_pool_channel_release(P, ch), 0);
    RUN_UNTIL(A.n == 2);
    assert_int_equal(A.tag[1], 1); /* the first waiter first */
    assert_int_equal(hp_amqp_pool_channel_release(P, A.ch[1]), 0);
    RUN_UNTIL(A.n == 3);
    assert_int_equal(A.tag[2], 2);

    /* Nothing comes back within wait_timeout_ms: -ETIMEDOUT. */
    assert_int_equal(hp_amqp_pool_channel_acquire(P, HP_AMQP_POOL_PUBLISH, on_acquired,
                                                  (void *)(intptr_t)4, &out),
                     0);
    tick_settle(500);
    assert_int_equal(A.n, 3);
    tick_settle(600);
    assert_int_equal(A.n, 4);
    assert_int_equal(A.tag[3], 4);
    assert_int_equal(A.err[3], -ETIMEDOUT);
    assert_int_equal(stats(HP_AMQP_POOL_PUBLISH).timeouts, 1);

    /* Closing the pool ends the waiters. */
    assert_int_equal(hp_amqp_pool_channel_acquire(P, HP_AMQP_POOL_PUBLISH, on_acquired,
                                                  (void *)(intptr_t)5, &out),
                     0);
    assert_int_equal(hp_amqp_pool_channel_release(P, A.ch[2]), 0);
    RUN_UNTIL(A.n == 5);
    assert_int_equal(A.err[4], 0);
    assert_int_equal(hp_amqp_pool_channel_release(P, A.ch[4]), 0);
    ch = acquire_now(HP_AMQP_POOL_PUBLISH);
    assert_int_equal(hp_amqp_pool_channel_acquire(P, HP_AMQP_POOL_PUBLISH, on_acquired,
                                                  (void *)(intptr_t)6, &out),
                     0);
    assert_int_equal(hp_amqp_pool_channel_release(P, ch), 0);
    /* the waiter got it back at once; take it again and make one wait */
    RUN_UNTIL(A.n == 6);
    assert_int_equal(hp_amqp_pool_channel_acquire(P, HP_AMQP_POOL_PUBLISH, on_acquired,
                                                  (void *)(intptr_t)7, &out),
                     0);
    assert_int_equal(hp_amqp_pool_channel_release(P, A.ch[5]), 0);
    RUN_UNTIL(A.n == 7);
    assert_int_equal(hp_amqp_pool_channel_acquire(P, HP_AMQP_POOL_PUBLISH, on_acquired,
                                                  (void *)(intptr_t)8, &out),
                     0);
    assert_int_equal(hp_amqp_pool_channel_release(P, A.ch[6]), 0);
    RUN_UNTIL(A.n == 8);
    assert_int_equal(hp_amqp_pool_channel_acquire(P, HP_AMQP_POOL_PUBLISH, on_acquired,
                                                  (void *)(intptr_t)9, &out),
                     0);
    hp_amqp_pool_close(P, on_pool_done, NULL);
    assert_int_equal(A.n, 9);
    assert_int_equal(A.tag[8], 9);
    assert_int_equal(A.err[8], -ECANCELED);
    assert_int_equal(hp_amqp_pool_channel_acquire(P, HP_AMQP_POOL_PUBLISH, on_acquired, NULL,
                                                  &out),
                     -ESHUTDOWN);
    RUN_UNTIL(P_done);
    P = NULL;
}

/* A connection lost for good (no recovery): its idle channels are not
 * lent again, a channel lent on it is only forgotten when given back,
 * and after retry_ms a new connection replaces it and serves the waiter. */
static void test_lost_connection_replaced(void **state)
{
    (void)state;
    hp_amqp_pool_config_t c = pool_cfg();
    c.publish = (hp_amqp_pool_side_config_t){.min_conns = 1, .max_conns = 1, .channels = 4};
    c.consume.min_conns = 0;
    c.retry_ms = 2000;
    pool_start(&c);
    hp_amqp_channel_t *idle = acquire_wait(HP_AMQP_POOL_PUBLISH, 0);
    hp_amqp_channel_t *lent = acquire_wait(HP_AMQP_POOL_PUBLISH, 1);
    assert_int_equal(hp_amqp_pool_channel_release(P, idle), 0);
    assert_int_equal(stats(HP_AMQP_POOL_PUBLISH).channels_idle, 1);

    fb_kill(0);
    RUN_UNTIL(stats(HP_AMQP_POOL_PUBLISH).ready == 0 && stats(HP_AMQP_POOL_PUBLISH).closed == 1);
    hp_amqp_pool_stats_t s = stats(HP_AMQP_POOL_PUBLISH);
    assert_int_equal(s.channels_idle, 0);
    assert_int_equal(s.channels_lent, 0);
    /* The lent one is dead: giving it back forgets it. */
    assert_int_equal(hp_amqp_pool_channel_release(P, lent), 0);
    assert_int_equal(hp_amqp_pool_channel_release(P, lent), -ENOENT);

    /* Not replaced before retry_ms: the acquirer waits. */
    hp_amqp_channel_t *out = NULL;
    assert_int_equal(hp_amqp_pool_channel_acquire(P, HP_AMQP_POOL_PUBLISH, on_acquired,
                                                  (void *)(intptr_t)2, &out),
                     0);
    settle();
    assert_int_equal(F.n, 1);
    tick(2000);
    RUN_UNTIL(A.n == 3);
    assert_int_equal(A.tag[2], 2);
    assert_int_equal(A.err[2], 0);
    assert_int_equal(F.n, 2);
    assert_string_equal(F.c[1].name, "t publish w0 #2");
    assert_int_equal(F.c[1].channel_opens, 1);
    assert_int_equal(hp_amqp_pool_channel_release(P, A.ch[2]), 0);
    s = stats(HP_AMQP_POOL_PUBLISH);
    assert_int_equal(s.opened, 2);
    assert_int_equal(s.ready, 1);
    pool_finish();
}

/* A channel the broker closes is not lent again: the next acquire opens
 * another. */
static void test_channel_closed_by_broker_not_reused(void **state)
{
    (void)state;
    hp_amqp_pool_config_t c = pool_cfg();
    c.consume.min_conns = 0;
    pool_start(&c);
    hp_amqp_channel_t *ch = acquire_wait(HP_AMQP_POOL_PUBLISH, 0);
    uint16_t id = hp_amqp_channel_id(ch);
    assert_int_equal(hp_amqp_pool_channel_release(P, ch), 0);
    hp_amqp_method_t m = {.id = HP_AMQP_CHANNEL_CLOSE};
    m.channel_close.reply_code = HP_AMQP_PRECONDITION_FAILED;
    m.channel_close.reply_text = hp_amqp_str("PRECONDITION_FAILED");
    fb_send(&F.c[0], id, &m);
    RUN_UNTIL(stats(HP_AMQP_POOL_PUBLISH).channels_idle == 0);
    acquire_wait(HP_AMQP_POOL_PUBLISH, 1);
    assert_int_equal(F.c[0].channel_opens, 2);
    assert_int_equal(hp_amqp_pool_channel_release(P, A.ch[1]), 0);
    pool_finish();
}

/* A consumer whose connection is lost for good is consumed again, by the
 * pool, on the consumer connection that replaces it. */
static void test_consumer_moves_to_a_new_connection(void **state)
{
    (void)state;
    hp_amqp_pool_config_t c = pool_cfg();
    c.publish.min_conns = 0;
    c.consume = (hp_amqp_pool_side_config_t){.min_conns = 1, .max_conns = 1, .channels = 4};
    c.retry_ms = 500;
    pool_start(&c);
    assert_int_equal(hp_amqp_pool_consume(P, "work", 5, 0, HP_AMQP_NO_ARGS, on_msg, NULL,
                                          on_done, (void *)(intptr_t)1),
                     0);
    RUN_UNTIL(T.nres == 1);
    assert_int_equal(F.c[0].consumes, 1);
    fb_kill(0);
    RUN_UNTIL(stats(HP_AMQP_POOL_CONSUME).consumers_waiting == 1);
    tick(500);
    RUN_UNTIL(F.n == 2 && F.c[1].consumes == 1);
    assert_string_equal(F.c[1].name, "t consume w0 #2");
    assert_string_equal(F.c[1].consume_queue, "work");
    assert_int_equal(F.c[1].qos, 1);
    RUN_UNTIL(stats(HP_AMQP_POOL_CONSUME).consumers == 1);
    assert_int_equal(T.nres, 1); /* cb ran once */
    pool_finish();
}

/* A connection above min_conns with nothing lent for idle_timeout_ms is
 * closed; min_conns stay. */
static void test_idle_connection_closed(void **state)
{
    (void)state;
    hp_amqp_pool_config_t c = pool_cfg();
    c.publish = (hp_amqp_pool_side_config_t){.min_conns = 1, .max_conns = 2, .channels = 1};
    c.consume.min_conns = 0;
    c.idle_timeout_ms = 3000;
    pool_start(&c);
    hp_amqp_channel_t *a = acquire_wait(HP_AMQP_POOL_PUBLISH, 0);
    hp_amqp_channel_t *b = acquire_wait(HP_AMQP_POOL_PUBLISH, 1);
    assert_int_equal(stats(HP_AMQP_POOL_PUBLISH).ready, 2);
    assert_int_equal(hp_amqp_pool_channel_release(P, a), 0);
    assert_int_equal(hp_amqp_pool_channel_release(P, b), 0);
    tick_settle(2000);
    assert_int_equal(stats(HP_AMQP_POOL_PUBLISH).ready, 2);
    tick(1100);
    RUN_UNTIL(stats(HP_AMQP_POOL_PUBLISH).ready == 1 && fb_open() == 1);
    assert_int_equal(F.c[0].closes + F.c[1].closes, 1); /* closed gracefully */
    tick_settle(5000);
    assert_int_equal(stats(HP_AMQP_POOL_PUBLISH).ready, 1); /* min_conns */
    pool_finish();
}

/* shared: consumers on the publisher connections, none of their own. */
static void test_shared_connections(void **state)
{
    (void)state;
    hp_amqp_pool_config_t c = pool_cfg();
    c.shared = true;
    pool_start(&c);
    assert_int_equal(hp_amqp_pool_consume(P, "q", 0, 0, HP_AMQP_NO_ARGS, on_msg, NULL, on_done,
                                          NULL),
                     0);
    RUN_UNTIL(T.nres == 1);
    settle();
    assert_int_equal(F.n, 1);
    assert_string_equal(F.c[0].name, "t shared w0 #1");
    assert_int_equal(F.c[0].consumes, 1);
    pool_finish();
}

/* Bad configurations are refused; every allocation failure in
 * hp_amqp_pool_new leaves nothing behind (teardown counts the blocks once
 * the worker, which keeps the chunks its connections used, is gone). */
static void test_bad_config_and_oom(void **state)
{
    (void)state;
    hp_amqp_pool_config_t c = pool_cfg();
    h_init(0);
    broker_listen();
    c.amqp.port = B.port;
    hp_amqp_pool_t *p = NULL;
    hp_amqp_pool_config_t bad = c;
    bad.publish.min_conns = 3;
    assert_int_equal(hp_amqp_pool_new(&H.w, &bad, &p), -EINVAL);
    bad = c;
    bad.consume.channels = 0;
    assert_int_equal(hp_amqp_pool_new(&H.w, &bad, &p), -EINVAL);
    bad = c;
    bad.max_waiters = 0;
    assert_int_equal(hp_amqp_pool_new(&H.w, &bad, &p), -EINVAL);
    bad = c;
    bad.amqp.host = "";
    assert_int_equal(hp_amqp_pool_new(&H.w, &bad, &p), -EINVAL);
    for (uint64_t n = 1;; n++) {
        hp_alloc_fail_after(n, 0);
        int r = hp_amqp_pool_new(&H.w, &c, &p);
        hp_alloc_fail_after(0, 0);
        if (r == 0) {
            P = p;
            P_done = false;
            pool_finish();
            break;
        }
        assert_true(r == -ENOMEM || r == -ENOBUFS); /* the client's, for its buffers */
    }
}

static int pool_setup(void **state)
{
    P = NULL;
    return setup(state);
}

static int pool_teardown(void **state)
{
    for (int i = 0; i < F.n; i++)
        fb_close_fd(&F.c[i]);
    return teardown(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_opens_min_and_separates_sides, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_grows_to_max_and_reuses_channels, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_waiters_fifo_bounded_and_timed, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_lost_connection_replaced, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_channel_closed_by_broker_not_reused, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_consumer_moves_to_a_new_connection, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_idle_connection_closed, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_shared_connections, pool_setup, pool_teardown),
        cmocka_unit_test_setup_teardown(test_bad_config_and_oom, pool_setup, pool_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
