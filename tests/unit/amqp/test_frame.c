/*
 * test_frame.c - unit tests for AMQP 0-9-1 framing (src/amqp/frame.c).
 *
 * Parsing: hand-written frames of each type, parsed whole, from every
 * prefix (0: need more) and as a stream of several; every rejection
 * (frame-end octet, unknown type, heartbeat off channel 0 or with a
 * payload, a frame past frame_max, the peer's protocol header) with its
 * exact code and decided from the fewest bytes that decide it, so a
 * frame too large is refused from its 7-byte header before any payload.
 * Every input is placed against a PROT_NONE guard page, so a read past
 * the bytes given faults in any build. Writing: begin/end and heartbeat
 * frames that parse back byte for byte, writers that overflow at every
 * size leaving no frame patched, and the content header's prefix written
 * and read back, truncated at every length.
 */
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
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

/* `room` bytes (at least a page; frames of 4 KiB and a few bytes
 * fit), then a PROT_NONE page. */
static uint8_t *guard;
static size_t page, room;

static int group_setup(void **state)
{
    (void)state;
    page = (size_t)sysconf(_SC_PAGESIZE);
    room = (8192 + page - 1) / page * page;
    guard = mmap(NULL, room + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard == MAP_FAILED)
        return -1;
    return mprotect(guard + room, page, PROT_NONE);
}

static int group_teardown(void **state)
{
    (void)state;
    munmap(guard, room + page);
    return 0;
}

/* n bytes ending right at the guard page (one such copy at a time). */
static const uint8_t *at_guard(const void *p, size_t n)
{
    assert_true(n <= room);
    uint8_t *at = guard + room - n;
    if (n)
        memcpy(at, p, n);
    return at;
}

#define BYTES(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

/* Parses p[0, n) placed at the guard page. */
static long parse(const uint8_t *p, size_t n, uint32_t frame_max, hp_amqp_frame_t *f)
{
    return hp_amqp_frame_parse(at_guard(p, n), n, frame_max, f);
}

/* The outcome of the whole input, and of each of its prefixes: 0 (need
 * more) up to `decided` bytes, the whole input's answer from there on.
 * *f is not touched unless a frame is returned. */
static long parse_prefixes(const uint8_t *p, size_t n, uint32_t frame_max, size_t decided)
{
    hp_amqp_frame_t f;
    long whole = parse(p, n, frame_max, &f);
    for (size_t k = 0; k <= n; k++) {
        memset(&f, 0xa5, sizeof(f));
        long r = parse(p, k, frame_max, &f);
        assert_int_equal(r, k < decided ? 0 : whole);
        if (r <= 0) {
            /* Untouched: still the fill pattern. */
            assert_int_equal(f.type, 0xa5);
            assert_int_equal(f.channel, 0xa5a5);
        }
    }
    return whole;
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */

static void test_parse_whole(void **state)
{
    (void)state;
    hp_amqp_frame_t f;

    /* channel.open on channel 1: class 20, method 10, an empty shortstr. */
    static const uint8_t open[] = {1, 0, 1, 0, 0, 0, 5, 0, 20, 0, 10, 0, 0xce};
    assert_int_equal(parse_prefixes(open, sizeof(open), 0, sizeof(open)), 13);
    assert_int_equal(parse(open, sizeof(open), 4096, &f), 13);
    assert_int_equal(f.type, HP_AMQP_FRAME_METHOD);
    assert_int_equal(f.channel, 1);
    assert_int_equal(f.payload.len, 5);
    /* The payload is the received bytes, not a copy. */
    assert_ptr_equal(f.payload.ptr, guard + room - sizeof(open) + 7);
    assert_memory_equal(f.payload.ptr, open + 7, 5);

    /* A content header on channel 0xffff, a body, an empty body. */
    static const uint8_t hdr[] = {2, 0xff, 0xff, 0, 0, 0, 14, 0, 60, 0, 0, 0, 0, 0, 0,
                                  0, 0, 0, 3, 0, 0, 0xce};
    assert_int_equal(parse(hdr, sizeof(hdr), 0, &f), 22);
    assert_true(f.type == HP_AMQP_FRAME_HEADER && f.channel == 0xffff && f.payload.len == 14);
    static const uint8_t body[] = {3, 0, 7, 0, 0, 0, 3, 'a', 0xce, 'c', 0xce};
    assert_int_equal(parse_prefixes(body, sizeof(body), 0, sizeof(body)), 11);
    assert_int_equal(parse(body, sizeof(body), 0, &f), 11);
    assert_true(f.type == HP_AMQP_FRAME_BODY && f.channel == 7 && f.payload.len == 3);
    assert_memory_equal(f.payload.ptr, "a\xce" "c", 3);
    assert_int_equal(parse(BYTES(3, 0, 1, 0, 0, 0, 0, 0xce), 0, &f), 8);
    assert_int_equal(f.payload.len, 0);

    /* A heartbeat: type 8, channel 0, no payload. */
    assert_int_equal(parse_prefixes(BYTES(8, 0, 0, 0, 0, 0, 0, 0xce), 0, 8), 8);
    assert_int_equal(parse(BYTES(8, 0, 0, 0, 0, 0, 0, 0xce), 0, &f), 8);
    assert_true(f.type == HP_AMQP_FRAME_HEARTBEAT && f.channel == 0 && f.payload.len == 0);

    /* Bytes after the frame are the next frame's, not looked at. */
    assert_int_equal(parse(BYTES(8, 0, 0, 0, 0, 0, 0, 0xce, 0xff, 0xff), 0, &f), 8);
}

/* Several frames back to back, consumed like a stream. */
static void test_parse_stream(void **state)
{
    (void)state;
    static const uint8_t s[] = {
        1, 0, 0, 0, 0, 0, 4, 0, 10, 0, 11, 0xce,               /* method, channel 0 */
        8, 0, 0, 0, 0, 0, 0, 0xce,                             /* heartbeat */
        2, 0, 1, 0, 0, 0, 1, 0x55, 0xce,                       /* header, channel 1 */
        3, 0, 1, 0, 0, 0, 2, 'h', 'i', 0xce,                   /* body */
        1, 0, 2, 0, 0,                                         /* a frame cut short */
    };
    static const struct {
        long size;
        uint8_t type;
        uint16_t channel;
    } want[] = {{12, 1, 0}, {8, 8, 0}, {9, 2, 1}, {10, 3, 1}};
    size_t off = 0;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        hp_amqp_frame_t f;
        long r = parse(s + off, sizeof(s) - off, 4096, &f);
        assert_int_equal(r, want[i].size);
        assert_int_equal(f.type, want[i].type);
        assert_int_equal(f.channel, want[i].channel);
        assert_int_equal(f.payload.len, (uint32_t)r - HP_AMQP_FRAME_OVERHEAD);
        off += (size_t)r;
    }
    hp_amqp_frame_t f;
    assert_int_equal(parse(s + off, sizeof(s) - off, 4096, &f), 0);
    assert_int_equal(parse(s + off, 0, 4096, &f), 0);
}

static void test_parse_bad_end(void **state)
{
    (void)state;
    /* The frame-end octet is decided only when the whole frame is there. */
    assert_int_equal(parse_prefixes(BYTES(1, 0, 1, 0, 0, 0, 2, 0, 0, 0xcf), 0, 10), -EPROTO);
    assert_int_equal(parse_prefixes(BYTES(1, 0, 1, 0, 0, 0, 2, 0, 0, 0x00), 0, 10), -EPROTO);
    /* A size one short puts the last payload byte where the end is. */
    assert_int_equal(parse_prefixes(BYTES(3, 0, 1, 0, 0, 0, 1, 'a', 'b', 0xce), 0, 9), -EPROTO);
    /* One too long waits for a byte that, here, is not the end. */
    assert_int_equal(parse_prefixes(BYTES(3, 0, 1, 0, 0, 0, 3, 'a', 'b', 0xce, 0x01), 0, 11),
                     -EPROTO);
    assert_int_equal(parse_prefixes(BYTES(8, 0, 0, 0, 0, 0, 0, 0xcd), 0, 8), -EPROTO);
}

static void test_parse_unknown_type(void **state)
{
    (void)state;
    for (int t = 0; t < 256; t++) {
        uint8_t fr[] = {(uint8_t)t, 0, 0, 0, 0, 0, 0, 0xce};
        hp_amqp_frame_t f;
        long r = parse(fr, sizeof(fr), 0, &f);
        if (t == 1 || t == 2 || t == 3 || t == 8) {
            assert_int_equal(r, 8);
            continue;
        }
        assert_int_equal(r, -EPROTO);
        /* Known from the first byte (except 'A', which could be the
         * start of "AMQP" until the second byte says otherwise). */
        assert_int_equal(parse_prefixes(fr, sizeof(fr), 0, t == 'A' ? 2 : 1), -EPROTO);
    }
}

static void test_parse_heartbeat(void **state)
{
    (void)state;
    /* On channel 5: refused from the channel, three bytes in. */
    assert_int_equal(parse_prefixes(BYTES(8, 0, 5, 0, 0, 0, 0, 0xce), 0, 3), -EPROTO);
    assert_int_equal(parse_prefixes(BYTES(8, 1, 0, 0, 0, 0, 0, 0xce), 0, 3), -EPROTO);
    /* With a payload: refused from the size, before the payload. */
    assert_int_equal(parse_prefixes(BYTES(8, 0, 0, 0, 0, 0, 1, 0, 0xce), 0, 7), -EPROTO);
    assert_int_equal(parse_prefixes(BYTES(8, 0, 0, 0x80, 0, 0, 0), 0, 7), -EPROTO);
    /* The same shapes are fine for other frame types. */
    hp_amqp_frame_t f;
    assert_int_equal(parse(BYTES(3, 0, 5, 0, 0, 0, 0, 0xce), 0, &f), 8);
    assert_int_equal(parse(BYTES(3, 0, 0, 0, 0, 0, 1, 0, 0xce), 0, &f), 9);
}

static void test_parse_frame_max(void **state)
{
    (void)state;
    hp_amqp_frame_t f;
    /* frame_max counts the whole frame: 4096 allows a 4088-byte payload. */
    uint8_t *fr = calloc(1, 4097 + 8);
    assert_non_null(fr);
    fr[0] = HP_AMQP_FRAME_BODY;
    fr[2] = 1;
    fr[5] = 0x0f;
    fr[6] = 0xf8; /* 4088 */
    fr[7 + 4088] = 0xce;
    assert_int_equal(parse(fr, 4096, 4096, &f), 4096);
    assert_int_equal(f.payload.len, 4088);
    assert_int_equal(parse(fr, 7, 4096, &f), 0); /* fits: wait for it */
    assert_int_equal(parse(fr, 4095, 4096, &f), 0);
    assert_int_equal(parse(fr, 4096, 4095, &f), -EMSGSIZE);

    /* 4089: one byte over, refused from the 7-byte header alone. */
    fr[6] = 0xf9;
    fr[7 + 4088] = 0;
    fr[7 + 4089] = 0xce;
    for (size_t k = 0; k < 7; k++)
        assert_int_equal(parse(fr, k, 4096, &f), 0);
    for (size_t k = 7; k <= 4097; k++)
        assert_int_equal(parse(fr, k, 4096, &f), -EMSGSIZE);
    assert_int_equal(parse(fr, 4097, 4097, &f), 4097);
    assert_int_equal(parse(fr, 4097, 0, &f), 4097); /* 0: no limit */
    free(fr);

    /* The largest size the field holds: over any limit but none, and no
     * wrap-around making it look small. */
    static const uint8_t huge[] = {3, 0, 1, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(parse(huge, 7, 0xffffffffu, &f), -EMSGSIZE);
    assert_int_equal(parse(huge, 7, 131072, &f), -EMSGSIZE);
    assert_int_equal(parse(huge, 7, 0, &f), 0);
    static const uint8_t wrap[] = {3, 0, 1, 0xff, 0xff, 0xff, 0xf8};
    assert_int_equal(parse(wrap, 7, 4096, &f), -EMSGSIZE);
    /* A limit below the overhead refuses every frame, empty ones too. */
    assert_int_equal(parse(BYTES(3, 0, 1, 0, 0, 0, 0, 0xce), 7, &f), -EMSGSIZE);
    assert_int_equal(parse(BYTES(3, 0, 1, 0, 0, 0, 0, 0xce), 8, &f), 8);
}

static void test_parse_protocol_header(void **state)
{
    (void)state;
    /* The broker's answer to a version it does not speak is its own
     * protocol header: refused once all 8 bytes are there. */
    assert_int_equal(parse_prefixes((const uint8_t *)HP_AMQP_PROTOCOL_HEADER,
                                    HP_AMQP_PROTOCOL_HEADER_LEN, 0, 8),
                     -EPROTONOSUPPORT);
    assert_int_equal(parse_prefixes(BYTES('A', 'M', 'Q', 'P', 1, 1, 0, 9), 4096, 8),
                     -EPROTONOSUPPORT);
    assert_int_equal(parse_prefixes(BYTES('A', 'M', 'Q', 'P', 0, 0, 9, 1, 1, 0, 0), 0, 8),
                     -EPROTONOSUPPORT);
    /* Not "AMQP": an unknown frame type, known as soon as it differs. */
    assert_int_equal(parse_prefixes(BYTES('A', 'M', 'Q', 'X', 0, 0, 9, 1), 0, 4), -EPROTO);
    assert_int_equal(parse_prefixes(BYTES('A', 'B'), 0, 2), -EPROTO);
    assert_int_equal(parse_prefixes(BYTES('a', 'M', 'Q', 'P', 0, 0, 9, 1), 0, 1), -EPROTO);
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */

static void test_write_round_trip(void **state)
{
    (void)state;
    uint8_t buf[64];
    hp_amqp_wr_t w = hp_amqp_wr(buf, sizeof(buf));

    size_t a = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_METHOD, 3);
    assert_int_equal(a, 0);
    hp_amqp_wr_u16(&w, 60);
    hp_amqp_wr_u16(&w, 40);
    hp_amqp_wr_shortstr(&w, hp_amqp_str("ex"));
    hp_amqp_frame_end(&w, a);
    size_t b = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_BODY, 3);
    hp_amqp_frame_end(&w, b); /* empty payload */
    hp_amqp_frame_heartbeat(&w);
    assert_false(w.overflow);

    static const uint8_t want[] = {
        1, 0, 3, 0, 0, 0, 7, 0, 60, 0, 40, 2, 'e', 'x', 0xce,
        3, 0, 3, 0, 0, 0, 0, 0xce,
        8, 0, 0, 0, 0, 0, 0, 0xce,
    };
    assert_int_equal(w.len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));

    hp_amqp_frame_t f;
    assert_int_equal(parse(buf, w.len, 4096, &f), 15);
    assert_true(f.type == 1 && f.channel == 3 && f.payload.len == 7);
    assert_int_equal(parse(buf + 15, w.len - 15, 4096, &f), 8);
    assert_true(f.type == 3 && f.payload.len == 0);
    assert_int_equal(parse(buf + 23, w.len - 23, 4096, &f), 8);
    assert_true(f.type == 8 && f.channel == 0);

    /* A frame begun after other bytes in the writer. */
    w = hp_amqp_wr(buf, sizeof(buf));
    hp_amqp_wr_bytes(&w, "xyz", 3);
    size_t c = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_BODY, 0x1234);
    assert_int_equal(c, 3);
    hp_amqp_wr_bytes(&w, "\xce\xce", 2);
    hp_amqp_frame_end(&w, c);
    assert_int_equal(parse(buf + 3, w.len - 3, 0, &f), 10);
    assert_true(f.channel == 0x1234 && f.payload.len == 2);
}

/* A writer that runs out of room at any point leaves no frame that looks
 * complete: the size stays 0 and no frame-end octet is written. */
static void test_write_overflow(void **state)
{
    (void)state;
    static const char payload[] = "0123456789";
    const size_t plen = sizeof(payload) - 1, need = plen + HP_AMQP_FRAME_OVERHEAD;
    uint8_t buf[64];
    for (size_t cap = 0; cap < need; cap++) {
        memset(buf, 0xa5, sizeof(buf));
        hp_amqp_wr_t w = hp_amqp_wr(buf, cap);
        size_t start = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_BODY, 1);
        hp_amqp_wr_bytes(&w, payload, plen);
        size_t before = w.len;
        hp_amqp_frame_end(&w, start);
        assert_true(w.overflow);
        assert_int_equal(w.len, before);
        for (size_t i = cap; i < sizeof(buf); i++)
            assert_int_equal(buf[i], 0xa5); /* nothing past cap */
        if (cap >= 7) {
            static const uint8_t zero[4] = {0};
            assert_memory_equal(buf + 3, zero, 4); /* size not patched */
        }
        for (size_t i = 0; i < cap; i++)
            assert_true(buf[i] != 0xce);
    }
    /* Exactly enough room. */
    hp_amqp_wr_t w = hp_amqp_wr(buf, need);
    size_t start = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_BODY, 1);
    hp_amqp_wr_bytes(&w, payload, plen);
    hp_amqp_frame_end(&w, start);
    assert_false(w.overflow);
    hp_amqp_frame_t f;
    assert_int_equal(parse(buf, w.len, 0, &f), (long)need);

    /* A heartbeat is written whole or not at all. */
    for (size_t cap = 0; cap < 8; cap++) {
        memset(buf, 0xa5, sizeof(buf));
        w = hp_amqp_wr(buf, cap);
        hp_amqp_frame_heartbeat(&w);
        assert_true(w.overflow);
        assert_int_equal(w.len, 0);
        assert_int_equal(buf[0], 0xa5);
    }
}

static void test_content_header(void **state)
{
    (void)state;
    uint8_t buf[32];
    hp_amqp_wr_t w = hp_amqp_wr(buf, sizeof(buf));
    hp_amqp_frame_content_header(&w, 60, 0x0102030405060708ull);
    hp_amqp_wr_u16(&w, 0x9000); /* property flags follow */
    assert_false(w.overflow);
    static const uint8_t want[] = {0, 60, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x90, 0x00};
    assert_int_equal(w.len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));

    hp_amqp_rd_t r = hp_amqp_rd(at_guard(want, sizeof(want)), sizeof(want));
    uint16_t cls = 0;
    uint64_t size = 0;
    assert_int_equal(hp_amqp_frame_read_content_header(&r, &cls, &size), 0);
    assert_int_equal(cls, 60);
    assert_true(size == 0x0102030405060708ull);
    assert_int_equal(r.pos, 12); /* at the property flags */
    assert_int_equal(hp_amqp_rd_u16(&r), 0x9000);

    /* Nothing after the body size is fine (flags are the props' job). */
    r = hp_amqp_rd(at_guard(want, 12), 12);
    assert_int_equal(hp_amqp_frame_read_content_header(&r, &cls, &size), 0);

    /* Cut short at every length: -EPROTO, outputs untouched. */
    for (size_t k = 0; k < 12; k++) {
        r = hp_amqp_rd(at_guard(want, k), k);
        cls = 7;
        size = 7;
        assert_int_equal(hp_amqp_frame_read_content_header(&r, &cls, &size), -EPROTO);
        assert_true(r.bad);
        assert_true(cls == 7 && size == 7);
    }
    /* A weight other than 0. */
    r = hp_amqp_rd(at_guard(BYTES(0, 60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)), 12);
    assert_int_equal(hp_amqp_frame_read_content_header(&r, &cls, &size), -EPROTO);

    /* Round trip through a whole header frame. */
    w = hp_amqp_wr(buf, sizeof(buf));
    size_t start = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_HEADER, 9);
    hp_amqp_frame_content_header(&w, 60, UINT64_MAX);
    hp_amqp_wr_u16(&w, 0);
    hp_amqp_frame_end(&w, start);
    hp_amqp_frame_t f;
    assert_int_equal(parse(buf, w.len, 4096, &f), 7 + 14 + 1);
    r = hp_amqp_rd(f.payload.ptr, f.payload.len);
    assert_int_equal(hp_amqp_frame_read_content_header(&r, &cls, &size), 0);
    assert_true(cls == 60 && size == UINT64_MAX);

    /* Written into too small a writer: overflow, nothing readable. */
    w = hp_amqp_wr(buf, 11);
    hp_amqp_frame_content_header(&w, 60, 1);
    assert_true(w.overflow);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_whole),
        cmocka_unit_test(test_parse_stream),
        cmocka_unit_test(test_parse_bad_end),
        cmocka_unit_test(test_parse_unknown_type),
        cmocka_unit_test(test_parse_heartbeat),
        cmocka_unit_test(test_parse_frame_max),
        cmocka_unit_test(test_parse_protocol_header),
        cmocka_unit_test(test_write_round_trip),
        cmocka_unit_test(test_write_overflow),
        cmocka_unit_test(test_content_header),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
