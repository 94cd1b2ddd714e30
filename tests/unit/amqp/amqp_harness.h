/*
 * amqp_harness.h - a scripted fake AMQP broker for the client's unit tests
 * (test_client.c), on the net harness (net_harness.h: one worker on the
 * test's own thread, stepped with hp_loop_run_once, on a manual clock).
 *
 * The broker (B) is a plain non-blocking listening socket in the test:
 * the client connects to it, broker_accept takes the connection, and the
 * test then plays the broker's side one frame at a time:
 *   - broker_expect(id) / broker_expect_on(ch, id): the next frame the
 *     client sent must be that method (decoded with hp_amqp_method_decode;
 *     its strings point into a copy that lives until the test ends);
 *     broker_frame for any frame, broker_expect_nothing, broker_expect_eof;
 *   - broker_send(ch, &method), broker_send_id, broker_send_message (a
 *     content method, a header with properties, the body in N frames),
 *     broker_heartbeat, broker_write for raw bytes; each send (but the raw
 *     one) steps the worker until the client has read what was sent
 *     (client_sync), so the test can look at once;
 *   - broker_handshake(channel_max, frame_max, heartbeat): the whole
 *     handshake, what the client said kept in HS.
 * What the client's callbacks saw is copied into T (results, deliveries,
 * confirms, events; T.seq orders them all); hooks in T let a test act from
 * inside a callback. start()/start_with() give a READY client,
 * open_channel() an open channel, close_gracefully() the normal end.
 *
 * Memory: the allocator's door (hp_malloc and friends) is replaced by a
 * counting one (the library's alloc.o is then not linked), and teardown()
 * checks that as many blocks are live as at setup(): the worker, the
 * connection, its channels, their calls, consumers, confirm rings and
 * message copies all went back, whatever way the connection ended.
 *
 * Include it once, after <cmocka.h>, in a test binary of its own; its
 * functions are static and those a test does not use are marked unused.
 */
#ifndef HP_TEST_AMQP_HARNESS_H
#define HP_TEST_AMQP_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amqp/client_int.h"
#include "amqp/frame_int.h"
#include "amqp/wire_int.h"
#include "amqp_spec.h"
#include "core/sys_int.h"
#include "hotpath/alloc.h"
#include "hotpath/amqp.h"
#include "hotpath/amqp_table.h"

#include "../net/net_harness.h"

#define AH_UNUSED __attribute__((unused))

/* ---- a counting allocator (replaces src/core/alloc.c in this binary) ---- */

static uint64_t A_allocs, A_frees, A_countdown;
static int A_sticky;

static AH_UNUSED bool a_should_fail(void)
{
    if (A_countdown == 0)
        return false;
    if (A_countdown == 1) {
        if (!A_sticky)
            A_countdown = 0;
        return true;
    }
    A_countdown--;
    return false;
}

void *hp_malloc(size_t size)
{
    if (a_should_fail())
        return NULL;
    void *p = malloc(size ? size : 1);
    A_allocs += p != NULL;
    return p;
}

void *hp_calloc(size_t n, size_t size)
{
    if (a_should_fail())
        return NULL;
    void *p = calloc(n ? n : 1, size ? size : 1);
    A_allocs += p != NULL;
    return p;
}

void *hp_realloc(void *ptr, size_t size)
{
    if (a_should_fail())
        return NULL;
    void *p = realloc(ptr, size ? size : 1);
    A_allocs += p != NULL && ptr == NULL;
    return p;
}

void *hp_calloc_aligned(size_t size)
{
    if (a_should_fail())
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, size ? size : 1) != 0)
        return NULL;
    memset(p, 0, size);
    A_allocs++;
    return p;
}

void hp_free(void *ptr)
{
    A_frees += ptr != NULL;
    free(ptr);
}

uint64_t hp_alloc_count(void)
{
    return A_allocs;
}

void hp_alloc_fail_after(uint64_t n, int sticky)
{
    A_sticky = sticky;
    A_countdown = n;
}

static AH_UNUSED uint64_t live_blocks(void)
{
    return A_allocs - A_frees;
}

/* ---- what the client's callbacks saw ---- */

/* A result, copied (its byte strings are borrowed for the callback). */
typedef struct res {
    int tag;            /* the callback's arg */
    uint32_t seq;       /* order among all callbacks */
    bool ch_null;
    int err;
    uint16_t code, class_id, method_id;
    char text[256], queue[256], ctag[256];
    uint32_t messages, consumers;
} res_t;

/* A delivery, copied. */
typedef struct dlv {
    int tag;            /* the callback's arg */
    uint32_t seq;
    bool null;          /* on_msg(NULL): cancelled, or get-empty */
    char ctag[256], exchange[256], rkey[256], rtext[256];
    uint64_t dtag;
    bool redelivered;
    uint32_t message_count;
    uint16_t reply_code;
    hp_amqp_props_t props;  /* strings below, pointers cleared */
    char content_type[256], message_id[256];
    uint8_t headers[4096];
    uint32_t headers_len;
    uint8_t *body;      /* malloc: freed in teardown */
    uint32_t len;
} dlv_t;

enum { MAX_RES = 64, MAX_DLV = 64, MAX_CONF = 4096 };

static struct {
    uint32_t seq;
    hp_amqp_conn_t *conn; /* NULL once CLOSED ran */
    int ready, closed, blocked, unblocked, writable, recovering, recovered;
    res_t closed_r, recovering_r;
    char blocked_reason[256];
    res_t res[MAX_RES];
    int nres;
    res_t on_close[4];
    int non_close;
    dlv_t dlv[MAX_DLV];
    int ndlv;
    /* confirms: in the order they came, and how often per sequence number */
    struct {
        uint64_t seq;
        int status;
        uint32_t order;
    } conf[MAX_CONF];
    int nconf;
    int conf_count[MAX_CONF];
    /* what a callback does, for the tests that need it */
    void (*on_ready)(void);
    void (*on_writable)(void);
    void (*after_msg)(hp_amqp_channel_t *ch); /* after on_msg recorded a delivery */
    void (*after_done)(hp_amqp_channel_t *ch, int tag); /* after on_done recorded */
    void (*after_confirm)(hp_amqp_channel_t *ch, uint64_t seq);
    void (*after_chan_close)(hp_amqp_channel_t *ch);
} T;

static AH_UNUSED void copy_bytes(char *dst, size_t cap, hp_amqp_bytes_t b)
{
    size_t n = b.len < cap - 1 ? b.len : cap - 1;
    if (n)
        memcpy(dst, b.ptr, n);
    dst[n] = '\0';
}

static AH_UNUSED void res_copy(res_t *o, const hp_amqp_result_t *r, int tag,
                               bool ch_null)
{
    memset(o, 0, sizeof *o);
    o->tag = tag;
    o->seq = ++T.seq;
    o->ch_null = ch_null;
    o->err = r->err;
    o->code = r->reply_code;
    o->class_id = r->class_id;
    o->method_id = r->method_id;
    copy_bytes(o->text, sizeof o->text, r->reply_text);
    copy_bytes(o->queue, sizeof o->queue, r->queue);
    copy_bytes(o->ctag, sizeof o->ctag, r->consumer_tag);
    o->messages = r->message_count;
    o->consumers = r->consumer_count;
}

static AH_UNUSED void on_event(hp_amqp_conn_t *c, int ev, const hp_amqp_result_t *r,
                               void *arg)
{
    (void)arg;
    assert_int_equal(T.closed, 0); /* CLOSED is the last event */
    switch (ev) {
    case HP_AMQP_EV_READY:
        assert_ptr_equal(c, T.conn);
        T.ready++;
        if (T.on_ready)
            T.on_ready();
        break;
    case HP_AMQP_EV_BLOCKED:
        T.blocked++;
        copy_bytes(T.blocked_reason, sizeof T.blocked_reason, r->reply_text);
        break;
    case HP_AMQP_EV_UNBLOCKED:
        T.unblocked++;
        break;
    case HP_AMQP_EV_RECOVERING:
        T.recovering++;
        res_copy(&T.recovering_r, r, 0, false);
        break;
    case HP_AMQP_EV_RECOVERED:
        T.recovered++;
        break;
    case HP_AMQP_EV_CLOSED:
        T.closed++;
        res_copy(&T.closed_r, r, 0, false);
        T.conn = NULL;
        break;
    default:
        fail_msg("unknown event %d", ev);
    }
}

static AH_UNUSED void on_done(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    assert_true(T.nres < MAX_RES);
    res_copy(&T.res[T.nres++], r, (int)(intptr_t)arg, ch == NULL);
    if (T.after_done)
        T.after_done(ch, (int)(intptr_t)arg);
}

static AH_UNUSED void on_chan_close(hp_amqp_channel_t *ch, const hp_amqp_result_t *r,
                                    void *arg)
{
    assert_non_null(ch);
    assert_true(T.non_close < 4);
    res_copy(&T.on_close[T.non_close++], r, (int)(intptr_t)arg, false);
    if (T.after_chan_close)
        T.after_chan_close(ch);
}

static AH_UNUSED void on_confirm(hp_amqp_channel_t *ch, uint64_t seq, int status, void *arg)
{
    (void)ch;
    assert_int_equal((uint64_t)(uintptr_t)arg, seq); /* each publish's own arg */
    assert_true(T.nconf < MAX_CONF && seq < MAX_CONF);
    T.conf[T.nconf].seq = seq;
    T.conf[T.nconf].status = status;
    T.conf[T.nconf].order = ++T.seq;
    T.nconf++;
    T.conf_count[seq]++;
    if (T.after_confirm)
        T.after_confirm(ch, seq);
}

static AH_UNUSED void on_msg(hp_amqp_channel_t *ch, const hp_amqp_delivery_t *d, void *arg)
{
    (void)ch;
    assert_true(T.ndlv < MAX_DLV);
    dlv_t *o = &T.dlv[T.ndlv++];
    memset(o, 0, sizeof *o);
    o->tag = (int)(intptr_t)arg;
    o->seq = ++T.seq;
    if (!d) {
        o->null = true;
        if (T.after_msg)
            T.after_msg(ch);
        return;
    }
    copy_bytes(o->ctag, sizeof o->ctag, d->consumer_tag);
    copy_bytes(o->exchange, sizeof o->exchange, d->exchange);
    copy_bytes(o->rkey, sizeof o->rkey, d->routing_key);
    copy_bytes(o->rtext, sizeof o->rtext, d->reply_text);
    o->dtag = d->delivery_tag;
    o->redelivered = d->redelivered;
    o->message_count = d->message_count;
    o->reply_code = d->reply_code;
    o->props = d->props;
    copy_bytes(o->content_type, sizeof o->content_type, d->props.content_type);
    copy_bytes(o->message_id, sizeof o->message_id, d->props.message_id);
    assert_true(d->props.headers.len <= sizeof o->headers);
    if (d->props.headers.len)
        memcpy(o->headers, d->props.headers.ptr, d->props.headers.len);
    o->headers_len = d->props.headers.len;
    o->props.content_type = o->props.message_id = o->props.headers = (hp_amqp_bytes_t){0};
    o->len = d->body.len;
    o->body = malloc(d->body.len ? d->body.len : 1);
    assert_non_null(o->body);
    if (d->body.len)
        memcpy(o->body, d->body.ptr, d->body.len);
    if (T.after_msg)
        T.after_msg(ch);
}

static AH_UNUSED void on_writable(hp_amqp_conn_t *c, void *arg)
{
    (void)c;
    (void)arg;
    T.writable++;
    if (T.on_writable)
        T.on_writable();
}

/* ---- the fake broker ---- */

static struct {
    int lfd, fd;
    uint16_t port;
    uint8_t *buf;        /* received bytes: buf[0, cap) */
    uint8_t *rx;         /* the ones not parsed yet: rx[0, len), inside buf */
    size_t len, cap;
    int reads;           /* read calls that returned bytes */
    int rcvbuf;          /* SO_RCVBUF of the accepted socket; 0: the kernel's */
    bool eof;
    uint16_t channel;    /* of the last frame broker_frame returned */
    void **kept;         /* copies of received payloads, freed in teardown */
    int nkept, capkept;
} B;

static AH_UNUSED void broker_listen(void)
{
    B.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(B.lfd >= 0);
    int one = 1;
    setsockopt(B.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (B.rcvbuf) /* before listen: the window the handshake announces */
        setsockopt(B.lfd, SOL_SOCKET, SO_RCVBUF, &B.rcvbuf, sizeof B.rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(B.lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(B.lfd, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(listen(B.lfd, 8), 0);
    B.port = ntohs(a.sin_port);
}

static AH_UNUSED void broker_accept(void)
{
    uint64_t dl = mono_ms() + NH_PATIENCE * 1000;
    while ((B.fd = accept4(B.lfd, NULL, NULL, SOCK_NONBLOCK)) < 0) {
        assert_true(errno == EAGAIN);
        assert_true(mono_ms() < dl);
        step(1);
    }
    int one = 1;
    setsockopt(B.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Reads what the client sent so far. */
static AH_UNUSED void broker_fill(void)
{
    if (B.fd < 0 || B.eof)
        return;
    for (;;) {
        size_t off = (size_t)(B.rx - B.buf);
        if (B.cap - off - B.len < 65536) {
            if (B.len)
                memmove(B.buf, B.rx, B.len);
            off = 0;
            if (B.cap - B.len < 65536) {
                B.cap = B.cap * 2 + 65536;
                B.buf = realloc(B.buf, B.cap);
                assert_non_null(B.buf);
            }
            B.rx = B.buf;
        }
        ssize_t n = read(B.fd, B.rx + B.len, B.cap - off - B.len);
        if (n > 0) {
            B.len += (size_t)n;
            B.reads++;
            continue;
        }
        if (n == 0 || errno != EAGAIN)
            B.eof = true;
        return;
    }
}

static AH_UNUSED void broker_consume(size_t n)
{
    B.rx += n;
    B.len -= n;
}

/* Steps the worker until the client has read everything the broker wrote
 * (its socket's receive queue is empty), so that the client has seen the
 * broker's frames before the test looks. */
static AH_UNUSED void client_sync(void)
{
    for (int i = 0; i < 3; i++) {
        uint64_t dl = mono_ms() + NH_PATIENCE * 1000;
        for (;;) {
            int fd = T.conn && T.conn->c && !hp_conn_is_closed(T.conn->c) ? hp_conn_fd(T.conn->c)
                                                                         : -1;
            int unread = 0;
            if (fd < 0 || ioctl(fd, FIONREAD, &unread) < 0 || unread == 0 ||
                mono_ms() >= dl)
                break;
            step(1);
        }
        step(0);
    }
}

static AH_UNUSED void broker_write(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t dl = mono_ms() + NH_PATIENCE * 2000;
    while (len > 0) {
        ssize_t n = write(B.fd, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else {
            assert_true(n < 0 && errno == EAGAIN);
            assert_true(mono_ms() < dl);
            step(1);
        }
    }
}

/* The next whole frame from the client (waiting for it). Its payload is a
 * copy that lives until the test ends. */
static AH_UNUSED hp_amqp_frame_t broker_frame(void)
{
    hp_amqp_frame_t f;
    long n;
    uint64_t dl = mono_ms() + NH_PATIENCE * 1000;
    for (;;) {
        broker_fill();
        n = hp_amqp_frame_parse(B.rx, B.len, 0, &f);
        if (n != 0 || B.eof || mono_ms() >= dl)
            break;
        step(1);
    }
    if (n <= 0)
        fail_msg("no frame from the client (parse %ld, %zu bytes, eof %d)", n, B.len, B.eof);
    void *copy = malloc(f.payload.len ? f.payload.len : 1);
    assert_non_null(copy);
    memcpy(copy, f.payload.ptr, f.payload.len);
    if (B.nkept == B.capkept) {
        B.capkept = B.capkept * 2 + 1024;
        B.kept = realloc(B.kept, (size_t)B.capkept * sizeof *B.kept);
        assert_non_null(B.kept);
    }
    B.kept[B.nkept++] = copy;
    f.payload.ptr = copy;
    broker_consume((size_t)n);
    B.channel = f.channel;
    return f;
}

static AH_UNUSED const char *mname(uint32_t id)
{
    const char *n = hp_amqp_method_name(id);
    return n ? n : "?";
}

/* The next frame must be method `id`: returns it decoded (its strings
 * point into a copy that lives until the test ends). B.channel is its
 * channel. */
static AH_UNUSED hp_amqp_method_t broker_expect(uint32_t id)
{
    hp_amqp_frame_t f = broker_frame();
    if (f.type != HP_AMQP_FRAME_METHOD)
        fail_msg("expected %s, got a frame of type %u", mname(id), f.type);
    hp_amqp_method_t m;
    assert_int_equal(hp_amqp_method_decode(f.payload.ptr, f.payload.len, &m), 0);
    if (m.id != id)
        fail_msg("expected %s, got %s", mname(id), mname(m.id));
    return m;
}

/* Same, on channel `ch`. */
static AH_UNUSED hp_amqp_method_t broker_expect_on(uint16_t ch, uint32_t id)
{
    hp_amqp_method_t m = broker_expect(id);
    assert_int_equal(B.channel, ch);
    return m;
}

/* Nothing more from the client (after the kernel had the time to bring
 * it). */
static AH_UNUSED void broker_expect_nothing(void)
{
    pump_for(20);
    broker_fill();
    if (B.len)
        fail_msg("unexpected %zu bytes from the client (type %u)", B.len, B.rx[0]);
}

/* Waits for the client to close the TCP connection. */
static AH_UNUSED void broker_expect_eof(void)
{
    uint64_t dl = mono_ms() + NH_PATIENCE * 1000;
    while (!B.eof && mono_ms() < dl) {
        step(1);
        broker_fill();
    }
    assert_true(B.eof);
}

static AH_UNUSED size_t frame_method(uint8_t *buf, size_t cap, uint16_t ch,
                                     const hp_amqp_method_t *m)
{
    hp_amqp_wr_t w = hp_amqp_wr(buf, cap);
    size_t start = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_METHOD, ch);
    assert_int_equal(hp_amqp_method_encode(&w, m), 0);
    hp_amqp_frame_end(&w, start);
    assert_false(w.overflow);
    return w.len;
}

/* Sends method `m` on channel `ch`, then lets the client read it. */
static AH_UNUSED void broker_send(uint16_t ch, const hp_amqp_method_t *m)
{
    uint8_t buf[8192];
    broker_write(buf, frame_method(buf, sizeof buf, ch, m));
    client_sync();
}

static AH_UNUSED void broker_send_id(uint16_t ch, uint32_t id)
{
    broker_send(ch, &(hp_amqp_method_t){.id = id});
}

/* A whole message: the content method `m`, a header with `props` (NULL:
 * none) and `len` bytes of body in `nbody` frames (as even as possible;
 * at least one when len > 0). Returns the bytes written to buf. */
static AH_UNUSED size_t msg_build(uint8_t *buf, size_t cap, uint16_t ch,
                                  const hp_amqp_method_t *m, const hp_amqp_props_t *props,
                                  const void *body, size_t len, size_t nbody)
{
    hp_amqp_props_t none = {0};
    hp_amqp_wr_t w = hp_amqp_wr(buf, cap);
    size_t start = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_METHOD, ch);
    assert_int_equal(hp_amqp_method_encode(&w, m), 0);
    hp_amqp_frame_end(&w, start);
    start = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_HEADER, ch);
    hp_amqp_frame_content_header(&w, HP_AMQP_CLASS_BASIC, len);
    assert_int_equal(hp_amqp_props_encode(&w, props ? props : &none), 0);
    hp_amqp_frame_end(&w, start);
    if (len > 0 && nbody == 0)
        nbody = 1;
    size_t off = 0;
    for (size_t i = 0; i < nbody && len; i++) {
        size_t n = len / nbody + (i < len % nbody ? 1 : 0);
        start = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_BODY, ch);
        hp_amqp_wr_bytes(&w, (const uint8_t *)body + off, n);
        hp_amqp_frame_end(&w, start);
        off += n;
    }
    assert_false(w.overflow);
    return w.len;
}

static AH_UNUSED void broker_send_message(uint16_t ch, const hp_amqp_method_t *m,
                                          const hp_amqp_props_t *props, const void *body,
                                          size_t len, size_t nbody)
{
    size_t cap = len + 8 * (nbody + 4) + 4096;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    size_t n = msg_build(buf, cap, ch, m, props, body, len, nbody);
    broker_write(buf, n);
    free(buf);
    client_sync();
}

static AH_UNUSED void broker_heartbeat(void)
{
    uint8_t hb[HP_AMQP_FRAME_OVERHEAD];
    hp_amqp_wr_t w = hp_amqp_wr(hb, sizeof hb);
    hp_amqp_frame_heartbeat(&w);
    broker_write(hb, w.len);
    client_sync();
}

static AH_UNUSED void broker_close(void)
{
    if (B.fd >= 0)
        close(B.fd);
    B.fd = -1;
}

/* The client's next connection on the same listener (a recovery's): the
 * last one is closed and what was read from it dropped. */
static AH_UNUSED void broker_accept_again(void)
{
    broker_close();
    B.rx = B.buf;
    B.len = 0;
    B.eof = false;
    broker_accept();
}

/* Another listener on loopback (a second broker address): its fd, and
 * its port in *port. B keeps the harness's. */
static AH_UNUSED int listener_new(uint16_t *port)
{
    int lfd = B.lfd;
    uint16_t p = B.port;
    broker_listen();
    int fd = B.lfd;
    *port = B.port;
    B.lfd = lfd;
    B.port = p;
    return fd;
}

/* A port nobody listens on: connecting to it is refused. */
static AH_UNUSED uint16_t refused_port(void)
{
    uint16_t port;
    close(listener_new(&port));
    return port;
}

/* The broker moves to listener `lfd` (the client's next address): the
 * old listener and connection are closed, what was read is dropped. */
static AH_UNUSED void broker_move(int lfd)
{
    broker_close();
    if (B.lfd >= 0)
        close(B.lfd);
    B.lfd = lfd;
    B.rx = B.buf;
    B.len = 0;
    B.eof = false;
}

/* A worker and two broker addresses, in *cfg's addresses (kept in
 * list[0, cap)): the harness's listener first, then a second one (its fd
 * *l2). */
static AH_UNUSED void two_brokers(hp_amqp_config_t *cfg, int *l2, char *list, size_t cap)
{
    h_init(0);
    broker_listen();
    uint16_t p2;
    *l2 = listener_new(&p2);
    snprintf(list, cap, "127.0.0.1:%u,127.0.0.1:%u", B.port, p2);
    cfg->addresses = list;
}

/* CLOSED after a failed round of two: its text names the last address. */
static AH_UNUSED void assert_closed_at(uint16_t port)
{
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%u, the last of 2 addresses", port);
    if (!strstr(T.closed_r.text, want))
        fail_msg("'%s' does not say '%s'", T.closed_r.text, want);
}

/* Reads the 8-byte protocol header, which must be the first thing sent. */
static AH_UNUSED void broker_expect_header(void)
{
    uint64_t dl = mono_ms() + NH_PATIENCE * 1000;
    while (B.len < HP_AMQP_PROTOCOL_HEADER_LEN && !B.eof && mono_ms() < dl) {
        step(1);
        broker_fill();
    }
    assert_true(B.len >= HP_AMQP_PROTOCOL_HEADER_LEN);
    assert_memory_equal(B.rx, HP_AMQP_PROTOCOL_HEADER, HP_AMQP_PROTOCOL_HEADER_LEN);
    broker_consume(HP_AMQP_PROTOCOL_HEADER_LEN);
}

static uint8_t server_props_buf[512];

static AH_UNUSED void broker_send_start(const char *mechanisms)
{
    hp_amqp_table_builder_t b;
    hp_amqp_table_init(&b, server_props_buf, sizeof server_props_buf);
    hp_amqp_table_add_str(&b, "product", "fake broker");
    hp_amqp_table_open_table(&b, "capabilities");
    hp_amqp_table_add_bool(&b, "publisher_confirms", true);
    hp_amqp_table_close(&b);
    hp_amqp_bytes_t props;
    assert_int_equal(hp_amqp_table_finish(&b, &props), 0);
    hp_amqp_method_t m = {.id = HP_AMQP_CONNECTION_START};
    m.connection_start.version_major = 0;
    m.connection_start.version_minor = 9;
    m.connection_start.server_properties = props;
    m.connection_start.mechanisms = hp_amqp_str(mechanisms);
    m.connection_start.locales = hp_amqp_str("en_US");
    broker_send(0, &m);
}

static AH_UNUSED void broker_send_tune(uint16_t channel_max, uint32_t frame_max,
                                       uint16_t heartbeat)
{
    hp_amqp_method_t m = {.id = HP_AMQP_CONNECTION_TUNE};
    m.connection_tune.channel_max = channel_max;
    m.connection_tune.frame_max = frame_max;
    m.connection_tune.heartbeat = heartbeat;
    broker_send(0, &m);
}

/* What the handshake's client methods said. */
static struct {
    hp_amqp_connection_start_ok_t start_ok;
    hp_amqp_connection_tune_ok_t tune_ok;
    hp_amqp_connection_open_t open;
} HS;

/* Accepts the client and runs the whole handshake with the broker's tune
 * values; the client must then be READY. */
static AH_UNUSED void broker_handshake(uint16_t channel_max, uint32_t frame_max,
                                       uint16_t heartbeat)
{
    broker_accept();
    broker_expect_header();
    broker_send_start("AMQPLAIN PLAIN");
    HS.start_ok = broker_expect_on(0, HP_AMQP_CONNECTION_START_OK).connection_start_ok;
    broker_send_tune(channel_max, frame_max, heartbeat);
    HS.tune_ok = broker_expect_on(0, HP_AMQP_CONNECTION_TUNE_OK).connection_tune_ok;
    HS.open = broker_expect_on(0, HP_AMQP_CONNECTION_OPEN).connection_open;
    assert_int_equal(T.ready, 0);
    broker_send_id(0, HP_AMQP_CONNECTION_OPEN_OK);
    PUMP_UNTIL(T.ready == 1, 1000);
    assert_int_equal(T.ready, 1);
    assert_int_equal(T.closed, 0);
}

/* ---- the client ---- */

static AH_UNUSED hp_amqp_config_t test_cfg(void)
{
    hp_amqp_config_t cfg = HP_AMQP_CONFIG_DEFAULT;
    cfg.port = B.port;
    cfg.heartbeat_s = 0;
    cfg.recover = false; /* a loss is CLOSED, unless a test recovers */
    return cfg;
}

static AH_UNUSED void client_connect(const hp_amqp_config_t *cfg)
{
    assert_int_equal(hp_amqp_connect(&H.w, cfg, on_event, NULL, &T.conn), 0);
    assert_non_null(T.conn);
}

/* A worker, a broker and a READY client: `cfg` (NULL: test_cfg()) with the
 * broker's tune values. */
static AH_UNUSED void start_with(const hp_amqp_config_t *cfg, uint16_t channel_max,
                                 uint32_t frame_max, uint16_t heartbeat)
{
    h_init(0);
    broker_listen();
    hp_amqp_config_t c = test_cfg();
    if (cfg) {
        c = *cfg;
        c.port = B.port;
    }
    client_connect(&c);
    broker_handshake(channel_max, frame_max, heartbeat);
}

static AH_UNUSED void start_tuned(uint16_t channel_max, uint32_t frame_max, uint16_t heartbeat)
{
    start_with(NULL, channel_max, frame_max, heartbeat);
}

static AH_UNUSED void start(void)
{
    start_tuned(0, 0, 0);
}

/* Opens a channel, the broker answering open-ok. */
static AH_UNUSED hp_amqp_channel_t *open_channel(void)
{
    hp_amqp_channel_t *ch;
    int before = T.nres;
    assert_int_equal(hp_amqp_channel_open(T.conn, on_done, (void *)(intptr_t)1000, &ch), 0);
    uint16_t id = hp_amqp_channel_id(ch);
    broker_expect_on(id, HP_AMQP_CHANNEL_OPEN);
    broker_send_id(id, HP_AMQP_CHANNEL_OPEN_OK);
    assert_int_equal(T.nres, before + 1);
    assert_int_equal(T.res[before].tag, 1000);
    assert_int_equal(T.res[before].err, 0);
    assert_false(T.res[before].ch_null);
    return ch;
}

/* hp_amqp_close and the broker's close-ok: CLOSED with err 0. */
static AH_UNUSED void close_gracefully(void)
{
    hp_amqp_close(T.conn);
    hp_amqp_method_t m = broker_expect_on(0, HP_AMQP_CONNECTION_CLOSE);
    assert_int_equal(m.connection_close.reply_code, 200);
    assert_int_equal(T.closed, 0);
    broker_send_id(0, HP_AMQP_CONNECTION_CLOSE_OK);
    PUMP_UNTIL(T.closed == 1, 1000);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, 0);
    broker_expect_eof();
}

static AH_UNUSED void fill_pattern(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (uint8_t)(x >> 16);
    }
}

/* ---- sequences the tests share ---- */

/* The broker's reply (a method without fields) to the method the client
 * must have sent next on `ch`. */
static AH_UNUSED void broker_ok(uint16_t ch, uint32_t req, uint32_t rep)
{
    broker_expect_on(ch, req);
    broker_send_id(ch, rep);
}

/* After the protocol header: start (PLAIN), start-ok, tune (no limits),
 * tune-ok, and connection.open read but not answered yet. */
static AH_UNUSED void broker_login_to_open(void)
{
    broker_send_start("PLAIN");
    broker_expect_on(0, HP_AMQP_CONNECTION_START_OK);
    broker_send_tune(0, 0, 0);
    broker_expect_on(0, HP_AMQP_CONNECTION_TUNE_OK);
    broker_expect_on(0, HP_AMQP_CONNECTION_OPEN);
}

/* A recovering client's next dial: `backoff_ms` pass (the test's
 * recover_min_ms = recover_max_ms), the broker accepts on the same
 * listener and the handshake runs up to connection.open (not answered
 * yet). */
static AH_UNUSED void broker_redial_to_open(uint64_t backoff_ms)
{
    tick(backoff_ms);
    broker_accept_again();
    broker_expect_header();
    broker_login_to_open();
}

/* The broker drops the TCP connection of a client that recovers: its
 * RECOVERING event follows. */
static AH_UNUSED void broker_drop(void)
{
    int before = T.recovering;
    broker_close();
    PUMP_UNTIL(T.recovering == before + 1, 1000);
    assert_int_equal(T.recovering, before + 1);
}

/* The broker reads the confirm.select the client sent on `ch` and
 * answers select-ok. Returns what it read. */
static AH_UNUSED hp_amqp_method_t confirm_select_ok(uint16_t ch)
{
    hp_amqp_method_t m = broker_expect_on(ch, HP_AMQP_CONFIRM_SELECT);
    broker_send_id(ch, HP_AMQP_CONFIRM_SELECT_OK);
    return m;
}

/* Publishes `body` to exchange `ex` with key `rk` on a channel in
 * confirm mode: it must get sequence number `want`, which the callback's
 * arg carries (on_confirm checks it). */
static AH_UNUSED void publish_want(hp_amqp_channel_t *ch, const char *ex, const char *rk,
                                   const void *body, size_t len, uint64_t want)
{
    hp_amqp_msg_t msg = {.exchange = ex, .routing_key = rk, .body = body, .len = len};
    uint64_t seq = 0;
    assert_int_equal(hp_amqp_publish(ch, &msg, on_confirm, (void *)(uintptr_t)want, &seq), 0);
    assert_int_equal(seq, want);
}

/* The broker's basic.ack (ack) or basic.nack for `tag` on `ch`. */
static AH_UNUSED void broker_confirm(uint16_t ch, bool ack, uint64_t tag, bool multiple)
{
    hp_amqp_method_t m = {.id = ack ? HP_AMQP_BASIC_ACK : HP_AMQP_BASIC_NACK};
    if (ack) {
        m.basic_ack.delivery_tag = tag;
        m.basic_ack.multiple = multiple;
    } else {
        m.basic_nack.delivery_tag = tag;
        m.basic_nack.multiple = multiple;
    }
    broker_send(ch, &m);
}

static AH_UNUSED void broker_ack(uint16_t ch, uint64_t tag, bool multiple)
{
    broker_confirm(ch, true, tag, multiple);
}

/* Reads one published message (method, header, body frames) from the
 * client: returns the publish method, the properties in *props (strings
 * pointing into kept copies) and the body (malloc, the caller frees). */
static AH_UNUSED hp_amqp_method_t broker_expect_publish(uint16_t ch, hp_amqp_props_t *props,
                                                        uint8_t **body, size_t *len,
                                                        size_t *nframes)
{
    hp_amqp_method_t m = broker_expect_on(ch, HP_AMQP_BASIC_PUBLISH);
    hp_amqp_frame_t h = broker_frame();
    assert_int_equal(h.type, HP_AMQP_FRAME_HEADER);
    assert_int_equal(h.channel, ch);
    hp_amqp_rd_t r = hp_amqp_rd(h.payload.ptr, h.payload.len);
    uint16_t class_id;
    uint64_t size;
    assert_int_equal(hp_amqp_frame_read_content_header(&r, &class_id, &size), 0);
    assert_int_equal(class_id, HP_AMQP_CLASS_BASIC);
    hp_amqp_props_t p;
    assert_int_equal(hp_amqp_props_decode(&r, &p), 0);
    assert_int_equal(r.pos, r.len);
    if (props)
        *props = p;
    uint8_t *b = malloc(size ? size : 1);
    assert_non_null(b);
    size_t got = 0, n = 0;
    uint32_t fmax = hp_amqp_frame_max(T.conn);
    while (got < size) {
        hp_amqp_frame_t f = broker_frame();
        assert_int_equal(f.type, HP_AMQP_FRAME_BODY);
        assert_int_equal(f.channel, ch);
        assert_true(got + f.payload.len <= size);
        /* Every body frame but the last is as large as frame_max allows. */
        if (got + f.payload.len < size)
            assert_int_equal(f.payload.len, fmax - HP_AMQP_FRAME_OVERHEAD);
        assert_true(f.payload.len > 0);
        memcpy(b + got, f.payload.ptr, f.payload.len);
        got += f.payload.len;
        n++;
    }
    if (body)
        *body = b;
    else
        free(b);
    if (len)
        *len = size;
    if (nframes)
        *nframes = n;
    return m;
}

/* Publishes `size` bytes filled by fill_pattern(seed) (into `body`) to
 * the default exchange with key "q", without a confirm callback. Returns
 * false when the client refuses it with -EAGAIN (its output, and its
 * queue if it has one, are full); any other failure fails the test. */
static AH_UNUSED bool publish_pattern(hp_amqp_channel_t *ch, uint8_t *body, size_t size,
                                      uint32_t seed)
{
    fill_pattern(body, size, seed);
    hp_amqp_msg_t msg = {.routing_key = "q", .body = body, .len = size};
    int r = hp_amqp_publish(ch, &msg, NULL, NULL, NULL);
    if (r == -EAGAIN)
        return false;
    assert_int_equal(r, 0);
    return true;
}

/* The broker reads `n` messages of `size` bytes on `ch`, which must be
 * fill_pattern's with seeds 0 .. n-1, in that order (`body`: scratch of
 * `size` bytes); then the client's on_writable must follow. */
static AH_UNUSED void broker_read_patterns(uint16_t ch, int n, uint8_t *body, size_t size)
{
    for (int i = 0; i < n; i++) {
        uint8_t *b;
        size_t len;
        broker_expect_publish(ch, NULL, &b, &len, NULL);
        fill_pattern(body, size, (uint32_t)i);
        assert_int_equal(len, size);
        bool same = memcmp(b, body, size) == 0;
        free(b);
        if (!same)
            fail_msg("message %d of %d out of order or damaged", i, n);
    }
    PUMP_UNTIL(T.writable == 1, 1000);
    assert_int_equal(T.writable, 1);
}

/* Every confirm callback 1 .. n ran exactly once. */
static AH_UNUSED void assert_each_once(uint64_t n)
{
    for (uint64_t s = 1; s <= n; s++)
        if (T.conf_count[s] != 1)
            fail_msg("publish %llu: %d callbacks", (unsigned long long)s, T.conf_count[s]);
}

/* The client closes `ms` from now and not a millisecond earlier, with
 * error `err` (a deadline, or a timer's wait). */
static AH_UNUSED void assert_closes_after(uint64_t ms, int err)
{
    tick(ms - 1);
    assert_int_equal(T.closed, 0);
    tick(1);
    assert_int_equal(T.closed, 1);
    assert_int_equal(T.closed_r.err, err);
}

/* The client connection's counters now. */
static AH_UNUSED hp_amqp_stats_t client_stats(void)
{
    hp_amqp_stats_t s;
    hp_amqp_stats(T.conn, &s);
    return s;
}

/* ---- setup and teardown ---- */

static uint64_t live_at_start;

static AH_UNUSED int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    for (int i = 0; i < B.nkept; i++)
        free(B.kept[i]);
    free(B.kept);
    free(B.buf);
    memset(&B, 0, sizeof B);
    memset(&HS, 0, sizeof HS);
    B.lfd = B.fd = -1;
    h_reset();
    hp_sys_set_ops(NULL);
    hp_alloc_fail_after(0, 0);
    live_at_start = live_blocks();
    return 0;
}

static AH_UNUSED int teardown(void **state)
{
    (void)state;
    hp_sys_set_ops(NULL);
    hp_alloc_fail_after(0, 0);
    /* A connection still open sees its broker go. */
    broker_close();
    if (B.lfd >= 0)
        close(B.lfd);
    B.lfd = -1;
    if (H.started && T.conn)
        PUMP_UNTIL(T.conn == NULL, 1000);
    h_teardown();
    for (int i = 0; i < T.ndlv; i++)
        free(T.dlv[i].body);
    for (int i = 0; i < B.nkept; i++)
        free(B.kept[i]);
    free(B.kept);
    B.kept = NULL;
    B.nkept = B.capkept = 0;
    free(B.buf);
    B.buf = B.rx = NULL;
    /* Everything the worker and the client took is back. */
    assert_int_equal(live_blocks(), live_at_start);
    return 0;
}

#endif
