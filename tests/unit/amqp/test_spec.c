/*
 * test_spec.c - unit tests for the generated AMQP 0-9-1 codec
 * (amqp_spec.[ch], made by tools/amqpgen/amqpgen.py from the spec XML).
 *
 * Three kinds of check. Byte vectors written out by hand from the spec
 * (connection.tune-ok, basic.publish, queue.declare with its five bits in
 * one octet, basic.deliver, basic.ack/nack, RabbitMQ's connection.blocked
 * and update-secret, and a content header with eight properties) pin the
 * wire format itself. Every method the name table knows (found by walking
 * class and method ids, not by trusting a list) is filled with distinct
 * values through its field descriptors, for every combination of its bits,
 * and encoded; the bytes must equal what a small descriptor-driven
 * reference encoder in this file writes, decoding them must give the
 * values back (pointing into the bytes), every truncation and a trailing
 * byte must be -EPROTO, every writer too small -ENOBUFS, a shortstr of
 * 256 bytes in any field -EINVAL with nothing written, and a malformed
 * table in any table field -EPROTO. The properties get
 * the same treatment per flag, against a flag-to-field table written here
 * from the spec. Decoded inputs are exact-size heap copies, so ASan sees
 * any read past the end.
 */
#include "amqp_spec.h"
#include "amqp/frame_int.h"

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

static uint8_t *dup_exact(const void *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n)
        memcpy(c, p, n);
    return c;
}

/* Decodes p[0, n) from an exact-size copy; *copy keeps the bytes the
 * result points into (the caller frees it). */
static int decode_copy(const void *p, size_t n, hp_amqp_method_t *m, uint8_t **copy)
{
    *copy = dup_exact(p, n);
    memset(m, 0xa5, sizeof(*m));
    return hp_amqp_method_decode(*copy, n, m);
}

static int decode_only(const void *p, size_t n)
{
    hp_amqp_method_t m;
    uint8_t *c;
    int rc = decode_copy(p, n, &m, &c);
    free(c);
    return rc;
}

static bool bytes_eq(hp_amqp_bytes_t b, const char *s, size_t n)
{
    return b.len == n && (n == 0 || memcmp(b.ptr, s, n) == 0);
}

#define BYTES_EQ(b, lit) bytes_eq((b), (lit), sizeof(lit) - 1)

/* Encodes *m into a fresh buffer and checks the bytes are `want`. */
static void encodes_to(const hp_amqp_method_t *m, const uint8_t *want, size_t n)
{
    uint8_t buf[512];
    hp_amqp_wr_t w = hp_amqp_wr(buf, sizeof(buf));
    assert_int_equal(hp_amqp_method_encode(&w, m), 0);
    assert_int_equal(w.len, n);
    assert_memory_equal(buf, want, n);
}

/* ---------------------------------------------------------------- ids */

static void test_ids(void **state)
{
    (void)state;
    /* class id << 16 | method id, from the spec's index attributes. */
    assert_int_equal(HP_AMQP_CONNECTION_START, 0x000A000A);
    assert_int_equal(HP_AMQP_CONNECTION_TUNE_OK, 0x000A001F);
    assert_int_equal(HP_AMQP_CONNECTION_BLOCKED, 0x000A003C);
    assert_int_equal(HP_AMQP_CONNECTION_UNBLOCKED, 0x000A003D);
    assert_int_equal(HP_AMQP_CONNECTION_UPDATE_SECRET, 0x000A0046);
    assert_int_equal(HP_AMQP_CONNECTION_UPDATE_SECRET_OK, 0x000A0047);
    assert_int_equal(HP_AMQP_CHANNEL_CLOSE_OK, 20 << 16 | 41);
    assert_int_equal(HP_AMQP_EXCHANGE_UNBIND_OK, 40 << 16 | 51);
    assert_int_equal(HP_AMQP_QUEUE_DECLARE_OK, 50 << 16 | 11);
    assert_int_equal(HP_AMQP_BASIC_PUBLISH, 0x003C0028);
    assert_int_equal(HP_AMQP_BASIC_NACK, 60 << 16 | 120);
    assert_int_equal(HP_AMQP_CONFIRM_SELECT, 85 << 16 | 10);
    assert_int_equal(HP_AMQP_TX_ROLLBACK_OK, 90 << 16 | 31);
    assert_int_equal(HP_AMQP_CLASS_CONNECTION, 10);
    assert_int_equal(HP_AMQP_CLASS_BASIC, 60);
    assert_int_equal(HP_AMQP_CLASS_CONFIRM, 85);

    /* Every method of the spec plus RabbitMQ's four, found by id. */
    int n = 0, content = 0;
    for (uint32_t c = 0; c < 256; c++)
        for (uint32_t k = 0; k < 256; k++) {
            uint32_t id = c << 16 | k;
            const char *name = hp_amqp_method_name(id);
            if (!name) {
                assert_false(hp_amqp_method_has_content(id));
                assert_false(hp_amqp_method_synchronous(id));
                assert_int_equal(hp_amqp_method_response(id), 0);
                continue;
            }
            n++;
            content += hp_amqp_method_has_content(id);
            uint32_t r = hp_amqp_method_response(id);
            if (r) {
                /* A response is a method of the same class. */
                assert_true(hp_amqp_method_synchronous(id));
                assert_non_null(hp_amqp_method_name(r));
                assert_int_equal(r >> 16, c);
            }
        }
    assert_int_equal(n, 64);
    assert_int_equal(n, HP_AMQP_METHOD_COUNT);
    assert_int_equal(content, 4);
}

static void test_names_and_traits(void **state)
{
    (void)state;
    assert_string_equal(hp_amqp_method_name(HP_AMQP_BASIC_PUBLISH), "basic.publish");
    assert_string_equal(hp_amqp_method_name(HP_AMQP_QUEUE_DECLARE_OK), "queue.declare-ok");
    assert_string_equal(hp_amqp_method_name(HP_AMQP_BASIC_RECOVER_ASYNC), "basic.recover-async");
    assert_string_equal(hp_amqp_method_name(HP_AMQP_CONNECTION_BLOCKED), "connection.blocked");
    assert_string_equal(hp_amqp_method_name(HP_AMQP_CONNECTION_UPDATE_SECRET_OK),
                        "connection.update-secret-ok");
    assert_string_equal(hp_amqp_method_name(HP_AMQP_TX_ROLLBACK_OK), "tx.rollback-ok");
    assert_null(hp_amqp_method_name(0));
    assert_null(hp_amqp_method_name(60 << 16 | 41));

    assert_true(hp_amqp_method_has_content(HP_AMQP_BASIC_PUBLISH));
    assert_true(hp_amqp_method_has_content(HP_AMQP_BASIC_RETURN));
    assert_true(hp_amqp_method_has_content(HP_AMQP_BASIC_DELIVER));
    assert_true(hp_amqp_method_has_content(HP_AMQP_BASIC_GET_OK));
    assert_false(hp_amqp_method_has_content(HP_AMQP_BASIC_GET));
    assert_false(hp_amqp_method_has_content(HP_AMQP_BASIC_GET_EMPTY));
    assert_false(hp_amqp_method_has_content(HP_AMQP_BASIC_ACK));

    assert_true(hp_amqp_method_synchronous(HP_AMQP_QUEUE_DECLARE));
    assert_true(hp_amqp_method_synchronous(HP_AMQP_QUEUE_DECLARE_OK));
    assert_true(hp_amqp_method_synchronous(HP_AMQP_CHANNEL_FLOW));
    assert_false(hp_amqp_method_synchronous(HP_AMQP_CHANNEL_FLOW_OK)); /* as the XML has it */
    assert_true(hp_amqp_method_synchronous(HP_AMQP_CONFIRM_SELECT));
    assert_true(hp_amqp_method_synchronous(HP_AMQP_BASIC_GET_OK));
    assert_true(hp_amqp_method_synchronous(HP_AMQP_CONNECTION_UPDATE_SECRET));
    assert_false(hp_amqp_method_synchronous(HP_AMQP_CONNECTION_BLOCKED));
    assert_false(hp_amqp_method_synchronous(HP_AMQP_CONNECTION_UNBLOCKED));
    assert_false(hp_amqp_method_synchronous(HP_AMQP_BASIC_PUBLISH));
    assert_false(hp_amqp_method_synchronous(HP_AMQP_BASIC_ACK));
    assert_false(hp_amqp_method_synchronous(HP_AMQP_BASIC_NACK));
    assert_false(hp_amqp_method_synchronous(HP_AMQP_BASIC_RECOVER));

    assert_int_equal(hp_amqp_method_response(HP_AMQP_CONNECTION_START), HP_AMQP_CONNECTION_START_OK);
    assert_int_equal(hp_amqp_method_response(HP_AMQP_CONNECTION_UPDATE_SECRET),
                     HP_AMQP_CONNECTION_UPDATE_SECRET_OK);
    assert_int_equal(hp_amqp_method_response(HP_AMQP_CHANNEL_CLOSE), HP_AMQP_CHANNEL_CLOSE_OK);
    assert_int_equal(hp_amqp_method_response(HP_AMQP_QUEUE_DECLARE), HP_AMQP_QUEUE_DECLARE_OK);
    assert_int_equal(hp_amqp_method_response(HP_AMQP_EXCHANGE_UNBIND), HP_AMQP_EXCHANGE_UNBIND_OK);
    assert_int_equal(hp_amqp_method_response(HP_AMQP_BASIC_GET), HP_AMQP_BASIC_GET_OK);
    assert_int_equal(hp_amqp_method_response(HP_AMQP_CONFIRM_SELECT), HP_AMQP_CONFIRM_SELECT_OK);
    assert_int_equal(hp_amqp_method_response(HP_AMQP_TX_COMMIT), HP_AMQP_TX_COMMIT_OK);
    assert_int_equal(hp_amqp_method_response(HP_AMQP_QUEUE_DECLARE_OK), 0);
    assert_int_equal(hp_amqp_method_response(HP_AMQP_BASIC_PUBLISH), 0);
    assert_int_equal(hp_amqp_method_response(HP_AMQP_BASIC_RECOVER), 0);

    const hp_amqp_field_desc_t *f;
    assert_int_equal(hp_amqp_method_fields(HP_AMQP_BASIC_PUBLISH, &f), 5);
    assert_string_equal(f[0].name, "reserved-1");
    assert_true(f[0].reserved);
    assert_string_equal(f[2].name, "routing-key");
    assert_int_equal(f[2].type, HP_AMQP_FIELD_SHORTSTR);
    assert_int_equal(f[2].offset, offsetof(hp_amqp_method_t, basic_publish.routing_key));
    assert_int_equal(f[4].type, HP_AMQP_FIELD_BIT);
    assert_int_equal(hp_amqp_method_fields(HP_AMQP_TX_SELECT, &f), 0);
    assert_int_equal(hp_amqp_method_fields(60 << 16 | 41, &f), -ENOTSUP);
}

/* ---------------------------------------------------------------- hand-made vectors */

static void test_tune_ok(void **state)
{
    (void)state;
    /* class 10, method 31; channel-max 2047, frame-max 131072, heartbeat 60. */
    static const uint8_t v[] = {0x00, 0x0A, 0x00, 0x1F, 0x07, 0xFF, 0x00,
                                0x02, 0x00, 0x00, 0x00, 0x3C};
    hp_amqp_method_t m;
    uint8_t *c;
    assert_int_equal(decode_copy(v, sizeof(v), &m, &c), 0);
    assert_int_equal(m.id, HP_AMQP_CONNECTION_TUNE_OK);
    assert_int_equal(m.connection_tune_ok.channel_max, 2047);
    assert_int_equal(m.connection_tune_ok.frame_max, 131072);
    assert_int_equal(m.connection_tune_ok.heartbeat, 60);
    free(c);

    hp_amqp_method_t e = {.id = HP_AMQP_CONNECTION_TUNE_OK,
                          .connection_tune_ok = {.channel_max = 2047, .frame_max = 131072,
                                                 .heartbeat = 60}};
    encodes_to(&e, v, sizeof(v));
}

static void test_basic_publish(void **state)
{
    (void)state;
    /* reserved-1 0, exchange "amq.direct", routing-key "rk", then the bit
     * octet: mandatory in bit 0, immediate in bit 1. */
    uint8_t v[] = {0x00, 0x3C, 0x00, 0x28, 0x00, 0x00, 0x0A, 'a', 'm', 'q', '.',
                   'd',  'i',  'r',  'e',  'c',  't',  0x02, 'r', 'k', 0x01};
    const size_t n = sizeof(v);
    for (unsigned bits = 0; bits < 4; bits++) {
        v[n - 1] = (uint8_t)bits;
        hp_amqp_method_t m;
        uint8_t *c;
        assert_int_equal(decode_copy(v, n, &m, &c), 0);
        assert_int_equal(m.id, HP_AMQP_BASIC_PUBLISH);
        const hp_amqp_basic_publish_t *p = &m.basic_publish;
        assert_int_equal(p->reserved_1, 0);
        assert_true(BYTES_EQ(p->exchange, "amq.direct"));
        assert_ptr_equal(p->exchange.ptr, c + 7); /* zero-copy */
        assert_true(BYTES_EQ(p->routing_key, "rk"));
        assert_int_equal(p->mandatory, bits & 1);
        assert_int_equal(p->immediate, bits >> 1 & 1);
        free(c);

        hp_amqp_method_t e = {.id = HP_AMQP_BASIC_PUBLISH,
                              .basic_publish = {.exchange = hp_amqp_str("amq.direct"),
                                                .routing_key = hp_amqp_str("rk"),
                                                .mandatory = bits & 1,
                                                .immediate = bits >> 1 & 1}};
        encodes_to(&e, v, n);
    }
}

static void test_queue_declare(void **state)
{
    (void)state;
    /* reserved-1 0, queue "q1", one octet for passive, durable, exclusive,
     * auto-delete, no-wait (bits 0..4), then arguments: a table of 18
     * bytes holding "x-max-length" = int32 ('I') 1000. */
    uint8_t v[] = {0x00, 0x32, 0x00, 0x0A, 0x00, 0x00, 0x02, 'q', '1', 0x15, 0x00,
                   0x00, 0x00, 0x12, 0x0C, 'x',  '-',  'm',  'a', 'x', '-',  'l',
                   'e',  'n',  'g',  't',  'h',  'I',  0x00, 0x00, 0x03, 0xE8};
    const size_t bitpos = 9, n = sizeof(v);
    hp_amqp_method_t m;
    uint8_t *c;
    assert_int_equal(decode_copy(v, n, &m, &c), 0);
    assert_int_equal(m.id, HP_AMQP_QUEUE_DECLARE);
    const hp_amqp_queue_declare_t *q = &m.queue_declare;
    assert_true(BYTES_EQ(q->queue, "q1"));
    assert_true(q->passive);
    assert_false(q->durable);
    assert_true(q->exclusive);
    assert_false(q->auto_delete);
    assert_true(q->no_wait);
    assert_int_equal(q->arguments.len, 18);
    assert_ptr_equal(q->arguments.ptr, c + 14);
    free(c);

    /* Every combination of the five bits, both ways. */
    for (unsigned b = 0; b < 32; b++) {
        v[bitpos] = (uint8_t)b;
        assert_int_equal(decode_copy(v, n, &m, &c), 0);
        assert_int_equal(q->passive, b & 1);
        assert_int_equal(q->durable, b >> 1 & 1);
        assert_int_equal(q->exclusive, b >> 2 & 1);
        assert_int_equal(q->auto_delete, b >> 3 & 1);
        assert_int_equal(q->no_wait, b >> 4 & 1);
        free(c);

        hp_amqp_method_t e = {.id = HP_AMQP_QUEUE_DECLARE,
                              .queue_declare = {.queue = hp_amqp_str("q1"),
                                                .passive = b & 1,
                                                .durable = b >> 1 & 1,
                                                .exclusive = b >> 2 & 1,
                                                .auto_delete = b >> 3 & 1,
                                                .no_wait = b >> 4 & 1,
                                                .arguments = {v + 14, 18}}};
        encodes_to(&e, v, n);
    }

    /* The three unused bits of the octet are ignored on decode. */
    v[bitpos] = 0xE0;
    assert_int_equal(decode_copy(v, n, &m, &c), 0);
    assert_false(q->passive || q->durable || q->exclusive || q->auto_delete || q->no_wait);
    free(c);
}

static void test_basic_deliver(void **state)
{
    (void)state;
    /* consumer-tag "ctag", delivery-tag 0x0102030405060708, redelivered
     * (its own octet: a shortstr follows), exchange "", routing-key "k". */
    static const uint8_t v[] = {0x00, 0x3C, 0x00, 0x3C, 0x04, 'c',  't',  'a',  'g',  0x01, 0x02,
                                0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x01, 0x00, 0x01, 'k'};
    hp_amqp_method_t m;
    uint8_t *c;
    assert_int_equal(decode_copy(v, sizeof(v), &m, &c), 0);
    assert_int_equal(m.id, HP_AMQP_BASIC_DELIVER);
    const hp_amqp_basic_deliver_t *d = &m.basic_deliver;
    assert_true(BYTES_EQ(d->consumer_tag, "ctag"));
    assert_true(d->delivery_tag == 0x0102030405060708ull);
    assert_true(d->redelivered);
    assert_int_equal(d->exchange.len, 0);
    assert_true(BYTES_EQ(d->routing_key, "k"));
    free(c);

    hp_amqp_method_t e = {.id = HP_AMQP_BASIC_DELIVER,
                          .basic_deliver = {.consumer_tag = hp_amqp_str("ctag"),
                                            .delivery_tag = 0x0102030405060708ull,
                                            .redelivered = true,
                                            .exchange = hp_amqp_str(""),
                                            .routing_key = hp_amqp_str("k")}};
    encodes_to(&e, v, sizeof(v));
}

static void test_basic_ack_nack(void **state)
{
    (void)state;
    static const uint8_t ack[] = {0x00, 0x3C, 0x00, 0x50, 0x00, 0x00, 0x00,
                                  0x00, 0x00, 0x00, 0x00, 0x2A, 0x01};
    hp_amqp_method_t m;
    uint8_t *c;
    assert_int_equal(decode_copy(ack, sizeof(ack), &m, &c), 0);
    assert_int_equal(m.id, HP_AMQP_BASIC_ACK);
    assert_true(m.basic_ack.delivery_tag == 42);
    assert_true(m.basic_ack.multiple);
    free(c);
    hp_amqp_method_t e = {.id = HP_AMQP_BASIC_ACK,
                          .basic_ack = {.delivery_tag = 42, .multiple = true}};
    encodes_to(&e, ack, sizeof(ack));

    /* nack: multiple in bit 0, requeue in bit 1. */
    static const uint8_t nack[] = {0x00, 0x3C, 0x00, 0x78, 0xFF, 0xFF, 0xFF,
                                   0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0x02};
    assert_int_equal(decode_copy(nack, sizeof(nack), &m, &c), 0);
    assert_int_equal(m.id, HP_AMQP_BASIC_NACK);
    assert_true(m.basic_nack.delivery_tag == UINT64_MAX - 1);
    assert_false(m.basic_nack.multiple);
    assert_true(m.basic_nack.requeue);
    free(c);
    e = (hp_amqp_method_t){.id = HP_AMQP_BASIC_NACK,
                           .basic_nack = {.delivery_tag = UINT64_MAX - 1, .requeue = true}};
    encodes_to(&e, nack, sizeof(nack));
}

static void test_rabbit_extensions(void **state)
{
    (void)state;
    static const uint8_t blocked[] = {0x00, 0x0A, 0x00, 0x3C, 0x0B, 'l', 'o', 'w', ' ',
                                      'o',  'n',  ' ',  'd',  'i',  's', 'k'};
    hp_amqp_method_t m;
    uint8_t *c;
    assert_int_equal(decode_copy(blocked, sizeof(blocked), &m, &c), 0);
    assert_int_equal(m.id, HP_AMQP_CONNECTION_BLOCKED);
    assert_true(BYTES_EQ(m.connection_blocked.reason, "low on disk"));
    free(c);

    static const uint8_t unblocked[] = {0x00, 0x0A, 0x00, 0x3D};
    assert_int_equal(decode_copy(unblocked, sizeof(unblocked), &m, &c), 0);
    assert_int_equal(m.id, HP_AMQP_CONNECTION_UNBLOCKED);
    free(c);

    /* new-secret longstr "abc", reason shortstr "r". */
    static const uint8_t upd[] = {0x00, 0x0A, 0x00, 0x46, 0x00, 0x00, 0x00, 0x03,
                                  'a',  'b',  'c',  0x01, 'r'};
    hp_amqp_method_t e = {.id = HP_AMQP_CONNECTION_UPDATE_SECRET,
                          .connection_update_secret = {.new_secret = hp_amqp_str("abc"),
                                                       .reason = hp_amqp_str("r")}};
    encodes_to(&e, upd, sizeof(upd));
    assert_int_equal(decode_copy(upd, sizeof(upd), &m, &c), 0);
    assert_true(BYTES_EQ(m.connection_update_secret.new_secret, "abc"));
    assert_true(BYTES_EQ(m.connection_update_secret.reason, "r"));
    free(c);
}

/* ---------------------------------------------------------------- every method */

/* A valid table body: "k" = string "v". */
static const uint8_t good_table[] = {0x01, 'k', 'S', 0x00, 0x00, 0x00, 0x01, 'v'};

/* Distinct bytes for strings: field i, round r. */
static uint8_t pool[1024];

static void *at(hp_amqp_method_t *m, const hp_amqp_field_desc_t *f)
{
    return (char *)m + f->offset;
}

static const void *cat(const hp_amqp_method_t *m, const hp_amqp_field_desc_t *f)
{
    return (const char *)m + f->offset;
}

/* Fills every argument of method `id` with a value of its own: `bits`
 * gives the bit fields (the k-th bit field gets bit k), `round` the
 * string lengths (round 0: mid-size; round 1: the limits, 255 and 0). */
static void fill(hp_amqp_method_t *m, uint32_t id, unsigned bits, int round)
{
    const hp_amqp_field_desc_t *fd;
    int n = hp_amqp_method_fields(id, &fd);
    assert_true(n >= 0);
    memset(m, 0, sizeof(*m));
    m->id = id;
    int nbit = 0;
    for (int i = 0; i < n; i++) {
        const hp_amqp_field_desc_t *f = &fd[i];
        void *v = at(m, f);
        uint32_t u = (uint32_t)i;
        switch (f->type) {
        case HP_AMQP_FIELD_BIT:
            *(bool *)v = bits >> nbit++ & 1;
            break;
        case HP_AMQP_FIELD_OCTET:
            *(uint8_t *)v = (uint8_t)(0xA1 + u);
            break;
        case HP_AMQP_FIELD_SHORT:
            *(uint16_t *)v = (uint16_t)(0xB102 + 0x101 * u);
            break;
        case HP_AMQP_FIELD_LONG:
            *(uint32_t *)v = 0xC1020304u + 0x01010101u * u;
            break;
        case HP_AMQP_FIELD_LONGLONG:
        case HP_AMQP_FIELD_TIMESTAMP:
            *(uint64_t *)v = 0xD102030405060708ull + 0x0101010101010101ull * u;
            break;
        case HP_AMQP_FIELD_SHORTSTR: {
            uint32_t len = round == 0 ? 3 + 7 * u : (i % 2 ? 0 : 255);
            *(hp_amqp_bytes_t *)v = (hp_amqp_bytes_t){pool + 13 * u, len};
            break;
        }
        case HP_AMQP_FIELD_LONGSTR: {
            uint32_t len = round == 0 ? 300 + u : 0;
            *(hp_amqp_bytes_t *)v = (hp_amqp_bytes_t){pool + 17 * u, len};
            break;
        }
        case HP_AMQP_FIELD_TABLE:
            *(hp_amqp_bytes_t *)v = (hp_amqp_bytes_t){good_table, sizeof(good_table)};
            break;
        default:
            fail_msg("%s: field %s has type %d", hp_amqp_method_name(id), f->name, f->type);
        }
    }
}

static void put(uint8_t *b, size_t *len, uint64_t v, int n)
{
    for (int k = n - 1; k >= 0; k--)
        b[(*len)++] = (uint8_t)(v >> (8 * k));
}

static void put_bytes(uint8_t *b, size_t *len, hp_amqp_bytes_t s, int lenlen)
{
    put(b, len, s.len, lenlen);
    if (s.len)
        memcpy(b + *len, s.ptr, s.len);
    *len += s.len;
}

/* What the spec says the encoding of *m is (§4.2.5): big-endian integers,
 * shortstr with an octet length, longstr and table with a long one, and
 * consecutive bits packed into octets, the first in the lowest bit, up to
 * 8 per octet. Written from the field descriptors, not the generated code. */
static size_t reference_encode(const hp_amqp_method_t *m, uint8_t *b)
{
    const hp_amqp_field_desc_t *fd;
    int n = hp_amqp_method_fields(m->id, &fd);
    size_t len = 0;
    put(b, &len, m->id, 4);
    int run = 0; /* bits in the open octet, or 0 when none is open */
    size_t octet = 0;
    for (int i = 0; i < n; i++) {
        const hp_amqp_field_desc_t *f = &fd[i];
        const void *v = cat(m, f);
        if (f->type == HP_AMQP_FIELD_BIT) {
            if (run == 0 || run == 8) {
                octet = len;
                b[len++] = 0;
                run = 0;
            }
            b[octet] |= (uint8_t)(*(const bool *)v << run++);
            continue;
        }
        run = 0;
        switch (f->type) {
        case HP_AMQP_FIELD_OCTET:
            put(b, &len, *(const uint8_t *)v, 1);
            break;
        case HP_AMQP_FIELD_SHORT:
            put(b, &len, *(const uint16_t *)v, 2);
            break;
        case HP_AMQP_FIELD_LONG:
            put(b, &len, *(const uint32_t *)v, 4);
            break;
        case HP_AMQP_FIELD_LONGLONG:
        case HP_AMQP_FIELD_TIMESTAMP:
            put(b, &len, *(const uint64_t *)v, 8);
            break;
        case HP_AMQP_FIELD_SHORTSTR:
            put_bytes(b, &len, *(const hp_amqp_bytes_t *)v, 1);
            break;
        default:
            put_bytes(b, &len, *(const hp_amqp_bytes_t *)v, 4);
            break;
        }
    }
    return len;
}

/* The decoded arguments equal the filled ones, and strings point into
 * the decoded bytes [base, base + n). */
static void same_args(const hp_amqp_method_t *a, const hp_amqp_method_t *b, const uint8_t *base,
                      size_t n)
{
    const char *name = hp_amqp_method_name(a->id);
    assert_int_equal(a->id, b->id);
    const hp_amqp_field_desc_t *fd;
    int nf = hp_amqp_method_fields(a->id, &fd);
    for (int i = 0; i < nf; i++) {
        const hp_amqp_field_desc_t *f = &fd[i];
        const void *x = cat(a, f), *y = cat(b, f);
        bool ok;
        switch (f->type) {
        case HP_AMQP_FIELD_BIT:
            ok = *(const bool *)x == *(const bool *)y;
            break;
        case HP_AMQP_FIELD_OCTET:
            ok = *(const uint8_t *)x == *(const uint8_t *)y;
            break;
        case HP_AMQP_FIELD_SHORT:
            ok = *(const uint16_t *)x == *(const uint16_t *)y;
            break;
        case HP_AMQP_FIELD_LONG:
            ok = *(const uint32_t *)x == *(const uint32_t *)y;
            break;
        case HP_AMQP_FIELD_LONGLONG:
        case HP_AMQP_FIELD_TIMESTAMP:
            ok = *(const uint64_t *)x == *(const uint64_t *)y;
            break;
        default: {
            hp_amqp_bytes_t s = *(const hp_amqp_bytes_t *)x, t = *(const hp_amqp_bytes_t *)y;
            ok = s.len == t.len && (!s.len || memcmp(s.ptr, t.ptr, s.len) == 0);
            if (ok && t.len && base)
                ok = (const uint8_t *)t.ptr >= base && (const uint8_t *)t.ptr + t.len <= base + n;
        }
        }
        if (!ok)
            fail_msg("%s: field %s differs after the round trip", name, f->name);
    }
}

static int count_bits(uint32_t id)
{
    const hp_amqp_field_desc_t *fd;
    int n = hp_amqp_method_fields(id, &fd), bits = 0;
    for (int i = 0; i < n; i++)
        bits += fd[i].type == HP_AMQP_FIELD_BIT;
    return bits;
}

/* Round trip of one filled method, and every way of breaking it. */
static void round_trip(const hp_amqp_method_t *m, bool edges)
{
    const char *name = hp_amqp_method_name(m->id);
    static uint8_t want[4096], got[4096];
    size_t n = reference_encode(m, want);

    hp_amqp_wr_t w = hp_amqp_wr(got, sizeof(got));
    int rc = hp_amqp_method_encode(&w, m);
    if (rc != 0 || w.len != n || memcmp(got, want, n) != 0)
        fail_msg("%s: encode gave %d and %zu bytes, not the spec's %zu", name, rc, w.len, n);

    hp_amqp_method_t d;
    uint8_t *c;
    rc = decode_copy(got, n, &d, &c);
    if (rc != 0)
        fail_msg("%s: decode of its own encoding gave %d", name, rc);
    same_args(m, &d, c, n);
    free(c);
    if (!edges)
        return;

    /* Every truncation, and one byte too many. */
    for (size_t k = 0; k < n; k++)
        if ((rc = decode_only(got, k)) != -EPROTO)
            fail_msg("%s: truncated to %zu of %zu bytes gave %d", name, k, n, rc);
    got[n] = 0;
    if ((rc = decode_only(got, n + 1)) != -EPROTO)
        fail_msg("%s: a trailing byte gave %d", name, rc);

    /* Every writer too small: -ENOBUFS and nothing past its end. */
    for (size_t cap = 0; cap < n; cap++) {
        memset(got, 0x5a, n + 1);
        w = hp_amqp_wr(got, cap);
        if ((rc = hp_amqp_method_encode(&w, m)) != -ENOBUFS)
            fail_msg("%s: a %zu-byte writer gave %d", name, cap, rc);
        if (got[cap] != 0x5a)
            fail_msg("%s: a %zu-byte writer was written past its end", name, cap);
    }

    /* A shortstr of 256 bytes, in any field: -EINVAL, nothing written. A
     * malformed table in any field: encoded as given (encode does not look
     * inside tables), refused by decode. */
    static const uint8_t bad_table[] = {0x01, 'k', 'Z'};
    const hp_amqp_field_desc_t *fd;
    int nf = hp_amqp_method_fields(m->id, &fd);
    for (int i = 0; i < nf; i++) {
        hp_amqp_method_t bad = *m;
        hp_amqp_bytes_t *b = at(&bad, &fd[i]);
        if (fd[i].type == HP_AMQP_FIELD_SHORTSTR) {
            *b = (hp_amqp_bytes_t){pool, 256};
            w = hp_amqp_wr(got, sizeof(got));
            if ((rc = hp_amqp_method_encode(&w, &bad)) != -EINVAL || w.len != 0 || w.overflow)
                fail_msg("%s: a 256-byte %s gave %d (%zu bytes written)", name, fd[i].name, rc,
                         w.len);
        } else if (fd[i].type == HP_AMQP_FIELD_TABLE) {
            *b = (hp_amqp_bytes_t){bad_table, sizeof(bad_table)};
            w = hp_amqp_wr(got, sizeof(got));
            assert_int_equal(hp_amqp_method_encode(&w, &bad), 0);
            if ((rc = decode_only(got, w.len)) != -EPROTO)
                fail_msg("%s: a malformed table in %s gave %d", name, fd[i].name, rc);
        }
    }
}

static void test_every_method(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(pool); i++)
        pool[i] = (uint8_t)(i * 131 + 7); /* every byte value, 0 and 0xFF among them */

    int methods = 0;
    for (uint32_t cl = 0; cl < 256; cl++)
        for (uint32_t me = 0; me < 256; me++) {
            uint32_t id = cl << 16 | me;
            if (!hp_amqp_method_name(id))
                continue;
            methods++;
            unsigned combos = 1u << count_bits(id);
            for (int round = 0; round < 2; round++)
                for (unsigned bits = 0; bits < combos; bits++) {
                    hp_amqp_method_t m;
                    fill(&m, id, bits, round);
                    round_trip(&m, bits == 0 || bits == combos - 1);
                }
        }
    assert_int_equal(methods, HP_AMQP_METHOD_COUNT);
}

/* ---------------------------------------------------------------- errors */

static void test_unknown_ids(void **state)
{
    (void)state;
    static const uint32_t ids[] = {0,           10 << 16,    10 << 16 | 12, 10 << 16 | 62,
                                   20 << 16 | 30, 60 << 16 | 41, 61 << 16 | 40, 85 << 16 | 12,
                                   30 << 16 | 10, 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        uint8_t v[8] = {(uint8_t)(ids[i] >> 24), (uint8_t)(ids[i] >> 16), (uint8_t)(ids[i] >> 8),
                        (uint8_t)ids[i], 0, 0, 0, 0};
        hp_amqp_method_t m;
        uint8_t *c;
        /* Whatever follows the id: -ENOTSUP, and the id is there for the reply. */
        for (size_t n = 4; n <= sizeof(v); n += 4) {
            assert_int_equal(decode_copy(v, n, &m, &c), -ENOTSUP);
            assert_int_equal(m.id, ids[i]);
            free(c);
        }
        uint8_t buf[16];
        hp_amqp_wr_t w = hp_amqp_wr(buf, sizeof(buf));
        m = (hp_amqp_method_t){.id = ids[i]};
        assert_int_equal(hp_amqp_method_encode(&w, &m), -EINVAL);
        assert_int_equal(w.len, 0);
        assert_null(hp_amqp_method_name(ids[i]));
        assert_false(hp_amqp_method_has_content(ids[i]));
        assert_false(hp_amqp_method_synchronous(ids[i]));
        assert_int_equal(hp_amqp_method_response(ids[i]), 0);
    }
    /* Not even a whole id. */
    static const uint8_t part[] = {0x00, 0x3C, 0x00};
    for (size_t n = 0; n <= sizeof(part); n++)
        assert_int_equal(decode_only(part, n), -EPROTO);
}

static void test_shortstr_limit(void **state)
{
    (void)state;
    static uint8_t name[256];
    memset(name, 'e', sizeof(name));
    uint8_t buf[600];
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_PUBLISH,
                          .basic_publish = {.exchange = {name, 256}, .routing_key = {name, 1}}};
    hp_amqp_wr_t w = hp_amqp_wr(buf, sizeof(buf));
    assert_int_equal(hp_amqp_method_encode(&w, &m), -EINVAL);
    assert_int_equal(w.len, 0);
    assert_false(w.overflow);

    /* 255 is the most a shortstr holds. */
    m.basic_publish.exchange.len = 255;
    assert_int_equal(hp_amqp_method_encode(&w, &m), 0);
    assert_int_equal(w.len, 4 + 2 + 256 + 2 + 1);
    hp_amqp_method_t d;
    uint8_t *c;
    assert_int_equal(decode_copy(buf, w.len, &d, &c), 0);
    assert_int_equal(d.basic_publish.exchange.len, 255);
    free(c);
}

static void test_writer_overflow(void **state)
{
    (void)state;
    uint8_t buf[64];
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_ACK, .basic_ack = {.delivery_tag = 1}};
    /* 13 bytes do not fit in 12. */
    hp_amqp_wr_t w = hp_amqp_wr(buf, 12);
    assert_int_equal(hp_amqp_method_encode(&w, &m), -ENOBUFS);
    assert_true(w.overflow);
    w = hp_amqp_wr(buf, 13);
    assert_int_equal(hp_amqp_method_encode(&w, &m), 0);
    /* The writer's overflow is sticky: a later method that would fit
     * still reports it. */
    w = hp_amqp_wr(buf, sizeof(buf));
    w.overflow = true;
    m = (hp_amqp_method_t){.id = HP_AMQP_TX_SELECT};
    assert_int_equal(hp_amqp_method_encode(&w, &m), -ENOBUFS);
}

static void test_malformed_table_argument(void **state)
{
    (void)state;
    /* queue.declare "q", no bits, then a table argument of `t`. */
    static const uint8_t head[] = {0x00, 0x32, 0x00, 0x0A, 0x00, 0x00, 0x01, 'q', 0x00};
    static const struct {
        const char *why;
        uint8_t body[12];
        uint8_t len;
    } bad[] = {
        {"unknown type octet", {0x01, 'k', 'Z', 0x00}, 4},
        {"value cut short", {0x01, 'k', 'I', 0x00, 0x00}, 5},
        {"key longer than the table", {0x05, 'k', 'e'}, 3},
        {"string longer than the table", {0x01, 'k', 'S', 0x00, 0x00, 0x00, 0x09, 'v'}, 8},
        {"nested table longer than its value", {0x01, 'k', 'F', 0x00, 0x00, 0x00, 0x04, 0x01}, 8},
        {"key without a value", {0x01, 'k'}, 2},
    };
    uint8_t v[64];
    memcpy(v, head, sizeof(head));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = sizeof(head);
        put(v, &n, bad[i].len, 4);
        memcpy(v + n, bad[i].body, bad[i].len);
        n += bad[i].len;
        int rc = decode_only(v, n);
        if (rc != -EPROTO)
            fail_msg("queue.declare with a table (%s) gave %d", bad[i].why, rc);
    }
    /* The same frame with a good table decodes. */
    size_t n = sizeof(head);
    put(v, &n, sizeof(good_table), 4);
    memcpy(v + n, good_table, sizeof(good_table));
    n += sizeof(good_table);
    assert_int_equal(decode_only(v, n), 0);

    /* connection.start's server-properties are checked too. */
    static const uint8_t start[] = {0x00, 0x0A, 0x00, 0x0A, 0x00, 0x09, 0x00, 0x00,
                                    0x00, 0x03, 0x01, 'k',  'Z',  0x00, 0x00, 0x00,
                                    0x05, 'P',  'L',  'A',  'I',  'N',  0x00, 0x00,
                                    0x00, 0x05, 'e',  'n',  '_',  'U',  'S'};
    assert_int_equal(decode_only(start, sizeof(start)), -EPROTO);
}

/* ---------------------------------------------------------------- properties */

/* The basic class's properties in the spec's order (bit 15 first), with
 * where hp_amqp_props_t keeps each: written here from the spec, not
 * taken from the generated code. */
enum { P_SHORTSTR, P_TABLE, P_OCTET, P_TIMESTAMP };
static const struct {
    uint16_t flag;
    size_t off;
    int type;
} props[] = {
    {HP_AMQP_PROP_CONTENT_TYPE, offsetof(hp_amqp_props_t, content_type), P_SHORTSTR},
    {HP_AMQP_PROP_CONTENT_ENCODING, offsetof(hp_amqp_props_t, content_encoding), P_SHORTSTR},
    {HP_AMQP_PROP_HEADERS, offsetof(hp_amqp_props_t, headers), P_TABLE},
    {HP_AMQP_PROP_DELIVERY_MODE, offsetof(hp_amqp_props_t, delivery_mode), P_OCTET},
    {HP_AMQP_PROP_PRIORITY, offsetof(hp_amqp_props_t, priority), P_OCTET},
    {HP_AMQP_PROP_CORRELATION_ID, offsetof(hp_amqp_props_t, correlation_id), P_SHORTSTR},
    {HP_AMQP_PROP_REPLY_TO, offsetof(hp_amqp_props_t, reply_to), P_SHORTSTR},
    {HP_AMQP_PROP_EXPIRATION, offsetof(hp_amqp_props_t, expiration), P_SHORTSTR},
    {HP_AMQP_PROP_MESSAGE_ID, offsetof(hp_amqp_props_t, message_id), P_SHORTSTR},
    {HP_AMQP_PROP_TIMESTAMP, offsetof(hp_amqp_props_t, timestamp), P_TIMESTAMP},
    {HP_AMQP_PROP_TYPE, offsetof(hp_amqp_props_t, type), P_SHORTSTR},
    {HP_AMQP_PROP_USER_ID, offsetof(hp_amqp_props_t, user_id), P_SHORTSTR},
    {HP_AMQP_PROP_APP_ID, offsetof(hp_amqp_props_t, app_id), P_SHORTSTR},
    {HP_AMQP_PROP_RESERVED, offsetof(hp_amqp_props_t, reserved), P_SHORTSTR},
};
#define NPROPS (sizeof(props) / sizeof(props[0]))

/* Sets the properties in `flags`, each to a value of its own. */
static void props_fill(hp_amqp_props_t *p, uint16_t flags)
{
    memset(p, 0, sizeof(*p));
    p->flags = flags;
    for (size_t i = 0; i < NPROPS; i++) {
        if (!(flags & props[i].flag))
            continue;
        void *v = (char *)p + props[i].off;
        switch (props[i].type) {
        case P_SHORTSTR:
            *(hp_amqp_bytes_t *)v = (hp_amqp_bytes_t){pool + 11 * i, (uint32_t)(1 + 9 * i)};
            break;
        case P_TABLE:
            *(hp_amqp_bytes_t *)v = (hp_amqp_bytes_t){good_table, sizeof(good_table)};
            break;
        case P_OCTET:
            *(uint8_t *)v = (uint8_t)(0xE0 + i);
            break;
        case P_TIMESTAMP:
            *(uint64_t *)v = 0x0000000065A1B2C3ull + i;
            break;
        }
    }
}

static size_t props_reference(const hp_amqp_props_t *p, uint8_t *b)
{
    size_t len = 0;
    put(b, &len, p->flags, 2);
    for (size_t i = 0; i < NPROPS; i++) {
        if (!(p->flags & props[i].flag))
            continue;
        const void *v = (const char *)p + props[i].off;
        switch (props[i].type) {
        case P_SHORTSTR:
            put_bytes(b, &len, *(const hp_amqp_bytes_t *)v, 1);
            break;
        case P_TABLE:
            put_bytes(b, &len, *(const hp_amqp_bytes_t *)v, 4);
            break;
        case P_OCTET:
            put(b, &len, *(const uint8_t *)v, 1);
            break;
        case P_TIMESTAMP:
            put(b, &len, *(const uint64_t *)v, 8);
            break;
        }
    }
    return len;
}

/* Every property equal, absent ones zero. */
static void props_same(const hp_amqp_props_t *a, const hp_amqp_props_t *b)
{
    assert_int_equal(a->flags, b->flags);
    for (size_t i = 0; i < NPROPS; i++) {
        const void *x = (const char *)a + props[i].off, *y = (const char *)b + props[i].off;
        bool ok;
        switch (props[i].type) {
        case P_OCTET:
            ok = *(const uint8_t *)x == *(const uint8_t *)y;
            break;
        case P_TIMESTAMP:
            ok = *(const uint64_t *)x == *(const uint64_t *)y;
            break;
        default: {
            hp_amqp_bytes_t s = *(const hp_amqp_bytes_t *)x, t = *(const hp_amqp_bytes_t *)y;
            ok = s.len == t.len && (!s.len || memcmp(s.ptr, t.ptr, s.len) == 0);
        }
        }
        if (!ok)
            fail_msg("property %zu (flag 0x%04x) differs, flags 0x%04x", i, props[i].flag,
                     a->flags);
    }
}

/* Decodes properties from an exact-size copy of b[0, n); *pos (if not
 * NULL) is where the reader stopped. Only the return value and the
 * position are looked at: the strings point into the freed copy. */
static int props_decode_copy(const uint8_t *b, size_t n, hp_amqp_props_t *p, size_t *pos)
{
    uint8_t *c = dup_exact(b, n);
    memset(p, 0xa5, sizeof(*p));
    hp_amqp_rd_t r = hp_amqp_rd(c, n);
    int rc = hp_amqp_props_decode(&r, p);
    if (pos)
        *pos = r.pos;
    free(c);
    return rc;
}

static void props_round_trip(uint16_t flags)
{
    hp_amqp_props_t p, d;
    props_fill(&p, flags);
    uint8_t want[2048], got[2048];
    size_t n = props_reference(&p, want);
    hp_amqp_wr_t w = hp_amqp_wr(got, sizeof(got));
    assert_int_equal(hp_amqp_props_encode(&w, &p), 0);
    assert_int_equal(w.len, n);
    assert_memory_equal(got, want, n);

    /* Decode (from an exact copy, followed by one extra byte the decoder
     * must leave: a property list is read up to its end, no further). */
    got[n] = 0x77;
    uint8_t *c = dup_exact(got, n + 1);
    hp_amqp_rd_t r = hp_amqp_rd(c, n);
    memset(&d, 0xa5, sizeof(d));
    assert_int_equal(hp_amqp_props_decode(&r, &d), 0);
    assert_int_equal(r.pos, n);
    props_same(&p, &d);
    free(c);

    for (size_t k = 0; k < n; k++) {
        int rc = props_decode_copy(got, k, &d, NULL);
        if (rc != -EPROTO)
            fail_msg("flags 0x%04x: properties truncated to %zu of %zu bytes gave %d", flags, k, n,
                     rc);
    }
    for (size_t cap = 0; cap < n; cap++) {
        memset(got, 0x5a, n);
        w = hp_amqp_wr(got, cap);
        assert_int_equal(hp_amqp_props_encode(&w, &p), -ENOBUFS);
        assert_int_equal(got[cap], 0x5a);
    }
}

static void test_props_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(pool); i++)
        pool[i] = (uint8_t)(i * 131 + 7);
    assert_int_equal(NPROPS, 14);
    props_round_trip(0);
    uint16_t all = 0;
    for (size_t i = 0; i < NPROPS; i++) {
        props_round_trip(props[i].flag);
        all |= props[i].flag;
    }
    assert_int_equal(all, HP_AMQP_PROPS_ALL);
    props_round_trip(all);
    props_round_trip(HP_AMQP_PROP_DELIVERY_MODE | HP_AMQP_PROP_TIMESTAMP | HP_AMQP_PROP_HEADERS);
}

static void test_content_header(void **state)
{
    (void)state;
    /* A content header frame's payload written out by hand: class 60,
     * weight 0, body size 1024, then flags 0xBD48 = content-type (bit 15),
     * headers (13), delivery-mode (12), priority (11), correlation-id (10),
     * expiration (8), timestamp (6), app-id (3), and their values in that
     * order. */
    static const uint8_t v[] = {
        0x00, 0x3C, 0x00, 0x00,                                     /* class, weight */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,             /* body size */
        0xBD, 0x48,                                                 /* flags */
        0x0A, 't',  'e',  'x',  't',  '/',  'p',  'l',  'a',  'i',  'n', /* content-type */
        0x00, 0x00, 0x00, 0x08, 0x01, 'k',  'S',  0x00, 0x00, 0x00, 0x01, 'v', /* headers */
        0x02,                                                       /* delivery-mode */
        0x09,                                                       /* priority */
        0x02, 'c',  '1',                                            /* correlation-id */
        0x05, '6',  '0',  '0',  '0',  '0',                          /* expiration */
        0x00, 0x00, 0x00, 0x00, 0x5F, 0x5E, 0x10, 0x00,             /* timestamp */
        0x03, 'a',  'p',  'p',                                      /* app-id */
    };
    uint8_t *c = dup_exact(v, sizeof(v));
    hp_amqp_rd_t r = hp_amqp_rd(c, sizeof(v));
    uint16_t class_id;
    uint64_t body_size;
    assert_int_equal(hp_amqp_frame_read_content_header(&r, &class_id, &body_size), 0);
    assert_int_equal(class_id, HP_AMQP_CLASS_BASIC);
    assert_true(body_size == 1024);
    hp_amqp_props_t p;
    memset(&p, 0xa5, sizeof(p));
    assert_int_equal(hp_amqp_props_decode(&r, &p), 0);
    assert_int_equal(r.pos, sizeof(v));
    assert_int_equal(p.flags, 0xBD48);
    assert_true(BYTES_EQ(p.content_type, "text/plain"));
    assert_int_equal(p.content_encoding.len, 0);
    assert_int_equal(p.headers.len, 8);
    assert_memory_equal(p.headers.ptr, good_table, 8);
    assert_int_equal(p.delivery_mode, 2);
    assert_int_equal(p.priority, 9);
    assert_true(BYTES_EQ(p.correlation_id, "c1"));
    assert_int_equal(p.reply_to.len, 0);
    assert_true(BYTES_EQ(p.expiration, "60000"));
    assert_int_equal(p.message_id.len, 0);
    assert_true(p.timestamp == 0x5F5E1000);
    assert_int_equal(p.type.len, 0);
    assert_int_equal(p.user_id.len, 0);
    assert_true(BYTES_EQ(p.app_id, "app"));
    assert_int_equal(p.reserved.len, 0);
    free(c);

    hp_amqp_props_t e = {.flags = HP_AMQP_PROP_CONTENT_TYPE | HP_AMQP_PROP_HEADERS |
                                  HP_AMQP_PROP_DELIVERY_MODE | HP_AMQP_PROP_PRIORITY |
                                  HP_AMQP_PROP_CORRELATION_ID | HP_AMQP_PROP_EXPIRATION |
                                  HP_AMQP_PROP_TIMESTAMP | HP_AMQP_PROP_APP_ID,
                         .content_type = hp_amqp_str("text/plain"),
                         .headers = {good_table, sizeof(good_table)},
                         .delivery_mode = 2,
                         .priority = 9,
                         .correlation_id = hp_amqp_str("c1"),
                         .expiration = hp_amqp_str("60000"),
                         .timestamp = 0x5F5E1000,
                         .app_id = hp_amqp_str("app"),
                         /* Absent: not written whatever they hold. */
                         .message_id = hp_amqp_str("ignored")};
    uint8_t buf[128];
    hp_amqp_wr_t w = hp_amqp_wr(buf, sizeof(buf));
    hp_amqp_frame_content_header(&w, HP_AMQP_CLASS_BASIC, 1024);
    assert_int_equal(hp_amqp_props_encode(&w, &e), 0);
    assert_int_equal(w.len, sizeof(v));
    assert_memory_equal(buf, v, sizeof(v));
}

static void test_props_errors(void **state)
{
    (void)state;
    hp_amqp_props_t p;
    /* The continuation bit (0): basic has no second flags word. */
    static const uint8_t cont[] = {0x80, 0x01, 0x01, 'a', 0x00, 0x00};
    assert_int_equal(props_decode_copy(cont, sizeof(cont), &p, NULL), -EPROTO);
    /* Bit 1 names a 15th property basic does not have. */
    static const uint8_t bit1[] = {0x00, 0x02, 0x00};
    assert_int_equal(props_decode_copy(bit1, sizeof(bit1), &p, NULL), -EPROTO);
    /* Flags alone, none set: no properties, two bytes read. */
    static const uint8_t none[] = {0x00, 0x00};
    size_t pos;
    assert_int_equal(props_decode_copy(none, sizeof(none), &p, &pos), 0);
    assert_int_equal(pos, 2);
    assert_int_equal(props_decode_copy(none, 1, &p, NULL), -EPROTO);
    assert_int_equal(props_decode_copy(none, 0, &p, NULL), -EPROTO);
    /* A malformed headers table. */
    static const uint8_t badhdr[] = {0x20, 0x00, 0x00, 0x00, 0x00, 0x03, 0x01, 'k', 'Z'};
    assert_int_equal(props_decode_copy(badhdr, sizeof(badhdr), &p, NULL), -EPROTO);

    uint8_t buf[512];
    static uint8_t big[256];
    hp_amqp_wr_t w = hp_amqp_wr(buf, sizeof(buf));
    hp_amqp_props_t e = {.flags = 1};
    assert_int_equal(hp_amqp_props_encode(&w, &e), -EINVAL);
    e.flags = 2;
    assert_int_equal(hp_amqp_props_encode(&w, &e), -EINVAL);
    assert_int_equal(w.len, 0);
    /* A shortstr of 256 bytes: refused when present, not looked at when not. */
    e = (hp_amqp_props_t){.flags = HP_AMQP_PROP_PRIORITY | HP_AMQP_PROP_REPLY_TO,
                          .reply_to = {big, 256}};
    assert_int_equal(hp_amqp_props_encode(&w, &e), -EINVAL);
    assert_int_equal(w.len, 0);
    assert_false(w.overflow);
    e.flags = HP_AMQP_PROP_PRIORITY;
    assert_int_equal(hp_amqp_props_encode(&w, &e), 0);
    assert_int_equal(w.len, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_names_and_traits),
        cmocka_unit_test(test_tune_ok),
        cmocka_unit_test(test_basic_publish),
        cmocka_unit_test(test_queue_declare),
        cmocka_unit_test(test_basic_deliver),
        cmocka_unit_test(test_basic_ack_nack),
        cmocka_unit_test(test_rabbit_extensions),
        cmocka_unit_test(test_every_method),
        cmocka_unit_test(test_unknown_ids),
        cmocka_unit_test(test_shortstr_limit),
        cmocka_unit_test(test_writer_overflow),
        cmocka_unit_test(test_malformed_table_argument),
        cmocka_unit_test(test_props_round_trip),
        cmocka_unit_test(test_content_header),
        cmocka_unit_test(test_props_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
