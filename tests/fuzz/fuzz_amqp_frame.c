/*
 * fuzz_amqp_frame.c - libFuzzer target for AMQP 0-9-1 framing
 * (src/amqp/frame.c).
 *
 * The first input byte picks frame_max (none, below the overhead, tiny,
 * the spec's minimum, RabbitMQ's default, the largest); the rest is a
 * byte stream read frame after frame as a connection reads it. Checks:
 *   - a frame returned lies inside what was given, its payload right
 *     after the 7-byte header, its size the header's plus 8, its type one
 *     of the four, its end octet 0xCE, within frame_max; a heartbeat is
 *     on channel 0 and empty; errors are -EPROTO, -EMSGSIZE (decided from
 *     the 7-byte header) or -EPROTONOSUPPORT (the stream says "AMQP");
 *   - every prefix of what is left answers 0 or the whole answer, and
 *     once it answers it keeps answering the same (a few prefixes are
 *     parsed from exact-size heap copies so ASan sees any read past the
 *     bytes given);
 *   - the same stream arriving in pieces (sizes from a hash of the input)
 *     yields the same frames and the same final answer;
 *   - each frame written back with begin/end (or as a heartbeat) is the
 *     same bytes, and a content header read from a header frame's
 *     payload writes back to the same 12 bytes.
 */
#include "amqp/frame_int.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint32_t frame_maxes[8] = {0, 7, 8, 9, 64, HP_AMQP_FRAME_MIN_SIZE, 131072,
                                        UINT32_MAX};

static uint64_t hash64(const uint8_t *d, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ d[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Parses p[0, n) from a heap block of exactly n bytes. */
static long parse_copy(const uint8_t *p, size_t n, uint32_t fm)
{
    uint8_t *c = malloc(n ? n : 1);
    if (!c)
        abort();
    memcpy(c, p, n);
    hp_amqp_frame_t f;
    long r = hp_amqp_frame_parse(c, n, fm, &f);
    if (r > 0 && (f.payload.ptr != c + 7 || f.payload.len != (uint64_t)r - 8))
        abort();
    free(c);
    return r;
}

static void check_frame(const uint8_t *p, size_t n, uint32_t fm, long r, const hp_amqp_frame_t *f)
{
    size_t sz = (size_t)r;
    if (r < HP_AMQP_FRAME_OVERHEAD || sz > n)
        abort();
    if (fm && sz > fm)
        abort();
    uint32_t hdr = (uint32_t)p[3] << 24 | (uint32_t)p[4] << 16 | (uint32_t)p[5] << 8 | p[6];
    if (f->payload.ptr != p + 7 || f->payload.len != hdr || sz != (size_t)hdr + 8)
        abort();
    if (p[sz - 1] != HP_AMQP_FRAME_END || f->type != p[0] ||
        f->channel != (uint16_t)(p[1] << 8 | p[2]))
        abort();
    switch (f->type) {
    case HP_AMQP_FRAME_METHOD:
    case HP_AMQP_FRAME_HEADER:
    case HP_AMQP_FRAME_BODY:
        break;
    case HP_AMQP_FRAME_HEARTBEAT:
        if (f->channel != 0 || f->payload.len != 0)
            abort();
        break;
    default:
        abort();
    }

    /* Written back, byte for byte. */
    uint8_t *buf = malloc(sz);
    if (!buf)
        abort();
    hp_amqp_wr_t w = hp_amqp_wr(buf, sz);
    if (f->type == HP_AMQP_FRAME_HEARTBEAT) {
        hp_amqp_frame_heartbeat(&w);
    } else {
        size_t start = hp_amqp_frame_begin(&w, f->type, f->channel);
        hp_amqp_wr_bytes(&w, f->payload.ptr, f->payload.len);
        hp_amqp_frame_end(&w, start);
    }
    if (w.overflow || w.len != sz || memcmp(buf, p, sz) != 0)
        abort();
    /* With a byte less room the end octet cannot go in, and the size
     * field stays unpatched. */
    if (f->type != HP_AMQP_FRAME_HEARTBEAT) {
        w = hp_amqp_wr(buf, sz - 1);
        memset(buf, 0, sz);
        size_t start = hp_amqp_frame_begin(&w, f->type, f->channel);
        hp_amqp_wr_bytes(&w, f->payload.ptr, f->payload.len);
        hp_amqp_frame_end(&w, start);
        if (!w.overflow || w.len != sz - 1 || buf[3] | buf[4] | buf[5] | buf[6])
            abort();
    }

    if (f->type == HP_AMQP_FRAME_HEADER) {
        hp_amqp_rd_t rd = hp_amqp_rd(f->payload.ptr, f->payload.len);
        uint16_t cls;
        uint64_t bsz;
        int c = hp_amqp_frame_read_content_header(&rd, &cls, &bsz);
        if (c == 0) {
            if (rd.pos != 12 || rd.bad)
                abort();
            w = hp_amqp_wr(buf, 12);
            hp_amqp_frame_content_header(&w, cls, bsz);
            if (w.overflow || memcmp(buf, f->payload.ptr, 12) != 0)
                abort();
        } else if (c != -EPROTO || !rd.bad ||
                   (f->payload.len >= 12 && ((const uint8_t *)f->payload.ptr)[2] == 0 &&
                    ((const uint8_t *)f->payload.ptr)[3] == 0)) {
            abort();
        }
    }
    free(buf);
}

static void check_error(const uint8_t *p, size_t n, uint32_t fm, long r)
{
    switch (r) {
    case -EPROTO:
        break;
    case -EMSGSIZE: {
        if (!fm || n < 7)
            abort();
        uint64_t sz = (uint64_t)p[3] << 24 | (uint64_t)p[4] << 16 | (uint64_t)p[5] << 8 | p[6];
        if (sz + 8 <= fm)
            abort();
        break;
    }
    case -EPROTONOSUPPORT:
        if (n < 8 || memcmp(p, "AMQP", 4) != 0)
            abort();
        break;
    default:
        abort();
    }
}

/* Every prefix of p[0, n) answers 0 until some length, then the whole
 * answer from there on. */
static void check_prefixes(const uint8_t *p, size_t n, uint32_t fm, long whole)
{
    bool decided = false;
    for (size_t k = 0; k <= n; k++) {
        hp_amqp_frame_t f;
        long r = hp_amqp_frame_parse(p, k, fm, &f);
        if (r == 0 && !decided)
            continue;
        if (r != whole)
            abort();
        if (!decided && (k < 16 || whole < 0))
            if (parse_copy(p, k, fm) != whole)
                abort();
        decided = true;
        if (whole > 0)
            break; /* longer prefixes hold the next frame's bytes */
    }
    if (whole != 0 && !decided)
        abort();
    /* Short prefixes from exact copies: a read past k faults. */
    for (size_t k = 0; k <= n && k <= 8; k++) {
        hp_amqp_frame_t f;
        if (parse_copy(p, k, fm) != hp_amqp_frame_parse(p, k, fm, &f))
            abort();
    }
}

struct outcome {
    size_t off[64]; /* where each frame starts, the first 64 */
    size_t nframes;
    long last;      /* 0 or the error that ended the stream */
};

/* Reads frames from p[0, n) whole. */
static void read_whole(const uint8_t *p, size_t n, uint32_t fm, struct outcome *o)
{
    size_t off = 0;
    o->nframes = 0;
    for (;;) {
        hp_amqp_frame_t f;
        long r = hp_amqp_frame_parse(p + off, n - off, fm, &f);
        check_prefixes(p + off, n - off, fm, r);
        if (r <= 0) {
            if (r < 0)
                check_error(p + off, n - off, fm, r);
            o->last = r;
            return;
        }
        check_frame(p + off, n - off, fm, r, &f);
        if (o->nframes < 64)
            o->off[o->nframes] = off;
        o->nframes++;
        off += (size_t)r;
    }
}

/* The same bytes arriving in pieces: after each arrival, frames are
 * taken from the current boundary until one is incomplete or bad. */
static void read_pieces(const uint8_t *p, size_t n, uint32_t fm, uint64_t seed,
                        struct outcome *o)
{
    size_t have = 0, off = 0;
    o->nframes = 0;
    o->last = 0;
    for (;;) {
        size_t step = (size_t)(next_rand(&seed) % 16);
        if (next_rand(&seed) % 8 == 0)
            step += (size_t)(next_rand(&seed) % 512);
        have = have + step > n ? n : have + step;
        long r;
        hp_amqp_frame_t f;
        while ((r = hp_amqp_frame_parse(p + off, have - off, fm, &f)) > 0) {
            if (o->nframes < 64)
                o->off[o->nframes] = off;
            o->nframes++;
            off += (size_t)r;
        }
        if (r < 0) {
            o->last = r;
            return;
        }
        if (have == n)
            return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t fm = frame_maxes[data[0] & 7];
    const uint8_t *p = data + 1;
    size_t n = size - 1;

    static struct outcome whole, pieces;
    read_whole(p, n, fm, &whole);
    read_pieces(p, n, fm, hash64(data, size) | 1, &pieces);
    if (whole.nframes != pieces.nframes || whole.last != pieces.last)
        abort();
    size_t m = whole.nframes < 64 ? whole.nframes : 64;
    if (memcmp(whole.off, pieces.off, m * sizeof(whole.off[0])) != 0)
        abort();
    return 0;
}
