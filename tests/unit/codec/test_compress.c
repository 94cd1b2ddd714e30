/*
 * test_compress.c - unit tests for streaming compression
 * (src/codec/compress.c).
 *
 * Every result is checked with zlib's inflate or brotli's decoder called
 * directly, never with src/codec/decompress.c. Covered: round trips for
 * each format at several levels, windows and memLevels; the deflate
 * formats give zlib's own bytes for a whole buffer; streaming at every
 * split of the input, byte by byte and in random pieces into random rooms
 * decodes to the input; a sync flush is a decodable prefix ending in
 * 00 00 ff ff (permessage-deflate with and without context takeover);
 * reset reuses the context (no allocation for deflate); argument and state
 * errors; an out-of-memory sweep at every allocation that leaks nothing.
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

#include "codec_harness.h"
#include "hotpath/compress.h"

static const hp_compress_algo_t algos[] = {HP_COMPRESS_GZIP, HP_COMPRESS_ZLIB,
                                           HP_COMPRESS_DEFLATE, HP_COMPRESS_BROTLI};
#define NALGOS (sizeof(algos) / sizeof(algos[0]))

static hp_compress_t *new_or_fail(hp_compress_algo_t algo, int level, int wbits, int mem)
{
    hp_compress_opts_t o = {.algo = algo, .level = level, .window_bits = wbits, .mem_level = mem};
    hp_compress_t *c = NULL;
    int rc = hp_compress_new(&c, &o);
    if (rc != 0)
        fail_msg("hp_compress_new(algo %d level %d window %d mem %d): %d", (int)algo, level,
                 wbits, mem, rc);
    return c;
}

/* A growing output that the test owns; the compressor is given `room`
 * bytes of it at a time, as a caller filling fixed-size chunks would. */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} obuf_t;

typedef int (*op_fn)(hp_compress_t *, hp_compress_io_t *);

/* Runs op until it is done (not HP_COMPRESS_FULL) and returns its result.
 * With room_max > 1 each round's room is drawn from 1..room_max. */
static int run_op(op_fn op, hp_compress_t *c, hp_compress_io_t *io, obuf_t *o, size_t room_max)
{
    for (;;) {
        size_t room = room_max > 1 ? 1 + (size_t)(rng() % room_max) : 1;
        if (o->cap - o->n < room) {
            o->cap = o->cap * 2 + room;
            o->p = realloc(o->p, o->cap);
            assert_non_null(o->p);
        }
        io->next_out = o->p + o->n;
        io->avail_out = room;
        int rc = op(c, io);
        assert_true(io->avail_out <= room);
        o->n += room - io->avail_out;
        if (rc != HP_COMPRESS_FULL)
            return rc;
        assert_int_equal(io->avail_out, 0); /* FULL means the room is used */
    }
}

/* Feeds in[0..len) in pieces (each 1..piece_max bytes, or all at once when
 * piece_max is 0), then finishes; the output is appended to o. */
static void compress_pieces(hp_compress_t *c, const uint8_t *in, size_t len, size_t piece_max,
                            size_t room_max, obuf_t *o)
{
    size_t at = 0;
    while (at < len) {
        size_t k = piece_max ? 1 + (size_t)(rng() % piece_max) : len - at;
        if (k > len - at)
            k = len - at;
        hp_compress_io_t io = {.next_in = in + at, .avail_in = k};
        assert_int_equal(run_op(hp_compress_feed, c, &io, o, room_max), 0);
        assert_int_equal(io.avail_in, 0);
        assert_true(io.next_in == in + at + k);
        at += k;
    }
    hp_compress_io_t io = {0};
    assert_int_equal(run_op(hp_compress_finish, c, &io, o, room_max), 0);
}

/* ---- tests ------------------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 1000, 100000};
    uint8_t *text = malloc(100000);
    assert_non_null(text);
    fill_text(text, 100000);
    obuf_t o = {0};
    for (size_t a = 0; a < NALGOS; a++) {
        bool br = algos[a] == HP_COMPRESS_BROTLI;
        static const int zlevels[] = {0, 1, 6, 9}, blevels[] = {0, 1, 5, 9, 11};
        static const int zwins[] = {8, 9, 12, 15}, bwins[] = {10, 16, 22, 24};
        static const int zmems[] = {1, 8, 9}, bmems[] = {0};
        const int *levels = br ? blevels : zlevels, *wins = br ? bwins : zwins;
        const int *mems = br ? bmems : zmems;
        size_t nl = br ? 5 : 4, nw = 4, nm = br ? 1 : 3;
        for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++)
            for (size_t li = 0; li < nl; li++)
                for (size_t wi = 0; wi < nw; wi++)
                    for (size_t mi = 0; mi < nm; mi++) {
                        size_t len = sizes[si];
                        /* brotli's offline qualities only on small input:
                         * they add seconds and nothing else. */
                        if (br && levels[li] >= 9 && len > 1000)
                            continue;
                        hp_compress_t *c = new_or_fail(algos[a], levels[li], wins[wi], mems[mi]);
                        o.n = 0;
                        compress_pieces(c, text, len, 0, len + 1024, &o);
                        /* A zlib header announces 512 bytes for window 8
                         * (see compress.h): that reference reads the
                         * header's window. raw and gzip decode in 256. */
                        int rw = algos[a] == HP_COMPRESS_ZLIB && wins[wi] == 8 ? 0 : wins[wi];
                        check_decodes(algos[a], br ? 0 : rw, o.p, o.n, false, text, len);
                        /* Text shrinks 2x unless the window is tiny. */
                        if (len == 100000 && levels[li] > 0 && wins[wi] >= 12)
                            assert_true(o.n < len / 2);
                        hp_compress_free(c);
                    }
    }
    free(o.p);
    free(text);
    assert_int_equal(live_blocks(), 0);
}

/* The deflate formats give exactly zlib's bytes, whether the input comes
 * whole or in pieces and whatever the room: what the HTTP layer's "same
 * bytes as before" rests on. */
static void test_same_bytes_as_zlib(void **state)
{
    (void)state;
    size_t len = 200000;
    uint8_t *text = malloc(len);
    assert_non_null(text);
    fill_text(text, len);
    uLong cap = deflateBound(NULL, len) + 64;
    uint8_t *ref = malloc(cap);
    assert_non_null(ref);
    obuf_t o = {0};
    static const int levels[] = {1, 6, 9};
    for (size_t a = 0; a < 3; a++) {
        for (size_t li = 0; li < 3; li++) {
            z_stream zs;
            memset(&zs, 0, sizeof(zs));
            assert_int_equal(deflateInit2(&zs, levels[li], Z_DEFLATED, ref_wbits(algos[a], 15),
                                          8, Z_DEFAULT_STRATEGY),
                             Z_OK);
            zs.next_in = text;
            zs.avail_in = (uInt)len;
            zs.next_out = ref;
            zs.avail_out = (uInt)cap;
            assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
            size_t refn = zs.total_out;
            deflateEnd(&zs);

            hp_compress_t *c = new_or_fail(algos[a], levels[li], 0, 0);
            o.n = 0;
            compress_pieces(c, text, len, 0, refn, &o);
            assert_int_equal(o.n, refn);
            assert_memory_equal(o.p, ref, refn);
            assert_int_equal(hp_compress_reset(c), 0);
            o.n = 0;
            compress_pieces(c, text, len, 5000, 300, &o);
            assert_int_equal(o.n, refn);
            assert_memory_equal(o.p, ref, refn);
            hp_compress_free(c);
        }
    }
    free(o.p);
    free(ref);
    free(text);
}

/* Two feeds split at every offset, then finish: always the input back. */
static void test_every_split(void **state)
{
    (void)state;
    size_t len = 1500;
    uint8_t in[1500];
    fill_text(in, len);
    obuf_t o = {0};
    for (size_t a = 0; a < NALGOS; a++) {
        hp_compress_t *c = new_or_fail(algos[a], algos[a] == HP_COMPRESS_BROTLI ? 5 : 6, 0, 0);
        for (size_t k = 0; k <= len; k++) {
            o.n = 0;
            hp_compress_io_t io = {.next_in = in, .avail_in = k};
            assert_int_equal(run_op(hp_compress_feed, c, &io, &o, 4096), 0);
            io.next_in = in + k;
            io.avail_in = len - k;
            assert_int_equal(run_op(hp_compress_finish, c, &io, &o, 4096), 0);
            assert_int_equal(io.avail_in, 0);
            check_decodes(algos[a], 0, o.p, o.n, false, in, len);
            assert_int_equal(hp_compress_reset(c), 0);
        }
        hp_compress_free(c);
    }
    free(o.p);
    assert_int_equal(live_blocks(), 0);
}

/* Byte by byte into one-byte rooms, then random pieces into random rooms:
 * the output decodes to the input every time. */
static void test_streaming_pieces(void **state)
{
    (void)state;
    size_t len = 65536;
    uint8_t *text = malloc(len);
    assert_non_null(text);
    fill_text(text, len);
    obuf_t o = {0};
    for (size_t a = 0; a < NALGOS; a++) {
        hp_compress_t *c = new_or_fail(algos[a], algos[a] == HP_COMPRESS_BROTLI ? 4 : 6, 0, 0);
        o.n = 0;
        compress_pieces(c, text, 5000, 1, 1, &o);
        check_decodes(algos[a], 0, o.p, o.n, false, text, 5000);
        for (int round = 0; round < 30; round++) {
            assert_int_equal(hp_compress_reset(c), 0);
            o.n = 0;
            size_t piece = 1 + (size_t)(rng() % 8192), room = 1 + (size_t)(rng() % 1024);
            compress_pieces(c, text, len, piece, room, &o);
            check_decodes(algos[a], 0, o.p, o.n, false, text, len);
        }
        hp_compress_free(c);
    }
    free(o.p);
    free(text);
    assert_int_equal(live_blocks(), 0);
}

/* Compresses one message the permessage-deflate way (feed, sync flush,
 * strip the last four bytes) into o, in rooms of up to room_max. */
static void pmd_message(hp_compress_t *c, const uint8_t *m, size_t n, size_t room_max, obuf_t *o)
{
    o->n = 0;
    hp_compress_io_t io = {.next_in = m, .avail_in = n};
    assert_int_equal(run_op(hp_compress_flush, c, &io, o, room_max), 0);
    assert_int_equal(io.avail_in, 0);
    assert_true(o->n >= 4);
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    assert_memory_equal(o->p + o->n - 4, tail, 4);
    o->n -= 4;
}

/* The receiver's side, with zlib directly: append 00 00 ff ff and inflate
 * on the (possibly shared) z_stream; the output must be the message. */
static void pmd_receive(z_stream *zs, const obuf_t *o, const uint8_t *want, size_t wn)
{
    uint8_t *frame = malloc(o->n + 4);
    uint8_t *back = malloc(wn + 16);
    assert_true(frame && back);
    memcpy(frame, o->p, o->n);
    memcpy(frame + o->n, "\x00\x00\xff\xff", 4);
    zs->next_in = frame;
    zs->avail_in = (uInt)(o->n + 4);
    zs->next_out = back;
    zs->avail_out = (uInt)(wn + 16);
    int r = inflate(zs, Z_SYNC_FLUSH);
    assert_true(r == Z_OK || (r == Z_BUF_ERROR && wn == 0));
    assert_int_equal(zs->avail_in, 0);
    assert_int_equal(wn + 16 - zs->avail_out, wn);
    assert_memory_equal(back, want, wn);
    free(back);
    free(frame);
}

static void test_sync_flush(void **state)
{
    (void)state;
    uint8_t msgs[6][3000];
    static const size_t lens[6] = {3000, 0, 1, 200, 3000, 2999};
    for (size_t i = 0; i < 6; i++)
        fill_text(msgs[i], lens[i]);
    memcpy(msgs[4], msgs[0], 3000); /* a repeat, which context takeover shrinks */
    obuf_t o = {0};

    /* Context takeover: one compressor, one inflater, message after
     * message; rooms from 1 byte (repeated markers) up. */
    static const size_t rooms[] = {1, 7, 100, 8192};
    static const int wins[] = {8, 9, 15};
    for (size_t ri = 0; ri < 4; ri++)
        for (size_t wi = 0; wi < 3; wi++) {
            hp_compress_t *c = new_or_fail(HP_COMPRESS_DEFLATE, 6, wins[wi], 0);
            z_stream zs;
            memset(&zs, 0, sizeof(zs));
            assert_int_equal(inflateInit2(&zs, -wins[wi]), Z_OK);
            size_t first = 0;
            for (size_t i = 0; i < 6; i++) {
                pmd_message(c, msgs[i], lens[i], rooms[ri], &o);
                if (i == 0)
                    first = o.n;
                /* With a 32 KiB window the repeat is a few back-references. */
                if (i == 4 && wins[wi] == 15)
                    assert_true(o.n < first / 10);
                pmd_receive(&zs, &o, msgs[i], lens[i]);
            }
            inflateEnd(&zs);
            hp_compress_free(c);
        }

    /* The bytes are zlib's own Z_SYNC_FLUSH, message after message, even
     * when they come out one byte at a time. */
    hp_compress_t *c = new_or_fail(HP_COMPRESS_DEFLATE, 6, 0, 0);
    z_stream ref;
    memset(&ref, 0, sizeof(ref));
    assert_int_equal(deflateInit2(&ref, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    for (size_t i = 0; i < 6; i++) {
        uint8_t want[4000];
        ref.next_in = msgs[i];
        ref.avail_in = (uInt)lens[i];
        ref.next_out = want;
        ref.avail_out = sizeof(want);
        int r = deflate(&ref, Z_SYNC_FLUSH);
        pmd_message(c, msgs[i], lens[i], 1, &o);
        if (r == Z_BUF_ERROR) {
            /* zlib writes nothing for a flush with nothing new; ours
             * writes an empty stored block, 00 00 00 ff ff, which is the
             * single 00 of RFC 7692 §7.2.3.6 once stripped. */
            assert_int_equal(lens[i], 0);
            assert_int_equal(o.n, 1);
            assert_int_equal(o.p[0], 0);
            continue;
        }
        assert_int_equal(r, Z_OK);
        assert_true(ref.avail_out > 0);
        assert_int_equal(o.n + 4, sizeof(want) - ref.avail_out);
        assert_memory_equal(o.p, want, o.n);
    }
    deflateEnd(&ref);
    hp_compress_free(c);

    /* No context takeover: a reset after each message, and each message
     * inflates on a fresh z_stream. */
    c = new_or_fail(HP_COMPRESS_DEFLATE, 6, 0, 0);
    for (size_t i = 0; i < 6; i++) {
        pmd_message(c, msgs[i], lens[i], 512, &o);
        z_stream zs;
        memset(&zs, 0, sizeof(zs));
        assert_int_equal(inflateInit2(&zs, -15), Z_OK);
        pmd_receive(&zs, &o, msgs[i], lens[i]);
        inflateEnd(&zs);
        assert_int_equal(hp_compress_reset(c), 0);
    }
    hp_compress_free(c);

    /* The other formats: after each flush, all input so far decodes from
     * what was written so far. */
    for (size_t a = 0; a < NALGOS; a++) {
        c = new_or_fail(algos[a], algos[a] == HP_COMPRESS_BROTLI ? 5 : 6, 0, 0);
        o.n = 0;
        uint8_t all[6 * 3000];
        size_t alln = 0;
        for (size_t i = 0; i < 6; i++) {
            hp_compress_io_t io = {.next_in = msgs[i], .avail_in = lens[i]};
            assert_int_equal(run_op(hp_compress_flush, c, &io, &o, 64), 0);
            memcpy(all + alln, msgs[i], lens[i]);
            alln += lens[i];
            check_decodes(algos[a], 0, o.p, o.n, true, all, alln);
        }
        /* A flush with nothing new is done at once and harmless. */
        hp_compress_io_t io = {0};
        assert_int_equal(run_op(hp_compress_flush, c, &io, &o, 64), 0);
        assert_int_equal(run_op(hp_compress_finish, c, &io, &o, 64), 0);
        check_decodes(algos[a], 0, o.p, o.n, false, all, alln);
        hp_compress_free(c);
    }
    free(o.p);
    assert_int_equal(live_blocks(), 0);
}

/* After a reset the context gives what a new one would, and for deflate
 * without allocating. */
static void test_reset(void **state)
{
    (void)state;
    uint8_t a_in[4000], b_in[3000];
    fill_text(a_in, sizeof(a_in));
    fill_text(b_in, sizeof(b_in));
    obuf_t o = {0}, fresh = {0};
    for (size_t a = 0; a < NALGOS; a++) {
        bool br = algos[a] == HP_COMPRESS_BROTLI;
        hp_compress_t *f = new_or_fail(algos[a], 5, 0, 0);
        compress_pieces(f, b_in, sizeof(b_in), 0, 8192, &fresh);
        hp_compress_free(f);

        hp_compress_t *c = new_or_fail(algos[a], 5, 0, 0);
        /* Reset after a finished stream ... */
        o.n = 0;
        compress_pieces(c, a_in, sizeof(a_in), 0, 8192, &o);
        uint64_t allocs = hp_alloc_count();
        assert_int_equal(hp_compress_reset(c), 0);
        o.n = 0;
        compress_pieces(c, b_in, sizeof(b_in), 0, 8192, &o);
        if (!br)
            assert_int_equal(hp_alloc_count(), allocs);
        assert_int_equal(o.n, fresh.n);
        assert_memory_equal(o.p, fresh.p, fresh.n);
        /* ... and in the middle of one, output room exhausted. */
        assert_int_equal(hp_compress_reset(c), 0);
        uint8_t small[16];
        hp_compress_io_t io = {
            .next_in = a_in, .avail_in = sizeof(a_in), .next_out = small, .avail_out = 16};
        assert_int_equal(hp_compress_finish(c, &io), HP_COMPRESS_FULL);
        assert_int_equal(hp_compress_reset(c), 0);
        o.n = 0;
        compress_pieces(c, b_in, sizeof(b_in), 0, 8192, &o);
        assert_int_equal(o.n, fresh.n);
        assert_memory_equal(o.p, fresh.p, fresh.n);
        hp_compress_free(c);
        fresh.n = 0;
    }
    free(o.p);
    free(fresh.p);
    assert_int_equal(live_blocks(), 0);
}

static void test_invalid(void **state)
{
    (void)state;
    static const hp_compress_opts_t bad[] = {
        {.algo = 0, .level = 6},
        {.algo = HP_COMPRESS_BROTLI + 1, .level = 6},
        {.algo = HP_COMPRESS_GZIP, .level = -1},
        {.algo = HP_COMPRESS_GZIP, .level = 10},
        {.algo = HP_COMPRESS_ZLIB, .level = 6, .window_bits = 7},
        {.algo = HP_COMPRESS_DEFLATE, .level = 6, .window_bits = 16},
        {.algo = HP_COMPRESS_DEFLATE, .level = 6, .window_bits = -15},
        {.algo = HP_COMPRESS_DEFLATE, .level = 6, .mem_level = 10},
        {.algo = HP_COMPRESS_DEFLATE, .level = 6, .mem_level = -1},
        {.algo = HP_COMPRESS_BROTLI, .level = 12},
        {.algo = HP_COMPRESS_BROTLI, .level = -1},
        {.algo = HP_COMPRESS_BROTLI, .level = 5, .window_bits = 9},
        {.algo = HP_COMPRESS_BROTLI, .level = 5, .window_bits = 25},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hp_compress_t *c = NULL;
        assert_int_equal(hp_compress_new(&c, &bad[i]), -EINVAL);
        assert_null(c);
    }
    hp_compress_free(NULL);

    /* After finish only reset and free: feed, flush and finish say
     * -EINVAL and leave io alone. */
    uint8_t out[256];
    for (size_t a = 0; a < NALGOS; a++) {
        hp_compress_t *c = new_or_fail(algos[a], 1, 0, 0);
        /* A feed without input does nothing. */
        hp_compress_io_t io = {.next_out = out, .avail_out = sizeof(out)};
        assert_int_equal(hp_compress_feed(c, &io), 0);
        assert_int_equal(io.avail_out, sizeof(out));
        io = (hp_compress_io_t){.next_in = (const uint8_t *)"hello", .avail_in = 5,
                                .next_out = out, .avail_out = sizeof(out)};
        assert_int_equal(hp_compress_finish(c, &io), 0);
        size_t n = sizeof(out) - io.avail_out;
        check_decodes(algos[a], 0, out, n, false, (const uint8_t *)"hello", 5);
        hp_compress_io_t more = {.next_in = (const uint8_t *)"x", .avail_in = 1,
                                 .next_out = out + n, .avail_out = sizeof(out) - n};
        assert_int_equal(hp_compress_feed(c, &more), -EINVAL);
        assert_int_equal(hp_compress_flush(c, &more), -EINVAL);
        assert_int_equal(hp_compress_finish(c, &more), -EINVAL);
        assert_int_equal(more.avail_in, 1);
        assert_int_equal(more.avail_out, sizeof(out) - n);
        assert_int_equal(hp_compress_reset(c), 0);
        assert_int_equal(hp_compress_finish(c, &more), 0);
        check_decodes(algos[a], 0, out + n, sizeof(out) - n - more.avail_out, false,
                      (const uint8_t *)"x", 1);
        hp_compress_free(c);
    }
    assert_int_equal(live_blocks(), 0);
}

/* The life of a context over two messages; returns the first error (or
 * 0), having freed everything. */
static int oom_scenario(hp_compress_algo_t algo, const uint8_t *in, size_t len, obuf_t *o)
{
    hp_compress_opts_t opts = {.algo = algo, .level = algo == HP_COMPRESS_BROTLI ? 5 : 6};
    hp_compress_t *c;
    int rc = hp_compress_new(&c, &opts);
    if (rc < 0)
        return rc;
    o->n = 0;
    size_t half = len / 2;
    hp_compress_io_t io = {.next_in = in, .avail_in = half};
    if ((rc = run_op(hp_compress_feed, c, &io, o, 4096)) < 0 ||
        (rc = run_op(hp_compress_flush, c, &io, o, 4096)) < 0)
        goto out;
    io.avail_in = len - half;
    if ((rc = run_op(hp_compress_feed, c, &io, o, 4096)) < 0 ||
        (rc = run_op(hp_compress_finish, c, &io, o, 4096)) < 0)
        goto out;
    check_decodes(algo, 0, o->p, o->n, false, in, len);
    /* The second message, after a reset. */
    if ((rc = hp_compress_reset(c)) < 0)
        goto out;
    o->n = 0;
    io = (hp_compress_io_t){.next_in = in, .avail_in = half};
    if ((rc = run_op(hp_compress_finish, c, &io, o, 4096)) < 0)
        goto out;
    check_decodes(algo, 0, o->p, o->n, false, in, half);
out:
    if (rc == -ENOMEM) {
        /* A failed context is refused until a reset, after which it works
         * again (with the allocator back). */
        hp_compress_io_t none = {0};
        if (algo == HP_COMPRESS_BROTLI && c)
            assert_int_equal(hp_compress_flush(c, &none), -EINVAL);
    }
    hp_compress_free(c);
    return rc;
}

static void test_oom_sweep(void **state)
{
    (void)state;
    size_t len = 100000;
    uint8_t *text = malloc(len);
    assert_non_null(text);
    fill_text(text, len);
    obuf_t o = {0};
    for (size_t a = 0; a < NALGOS; a++) {
        uint64_t before = hp_alloc_count();
        assert_int_equal(oom_scenario(algos[a], text, len, &o), 0);
        uint64_t allocs = hp_alloc_count() - before;
        assert_true(allocs > 0);
        assert_int_equal(live_blocks(), 0);
        for (int sticky = 0; sticky <= 1; sticky++) {
            uint64_t n;
            for (n = 1;; n++) {
                hp_alloc_fail_after(n, sticky);
                int rc = oom_scenario(algos[a], text, len, &o);
                hp_alloc_fail_after(0, 0);
                assert_int_equal(live_blocks(), 0);
                if (rc == 0)
                    break;
                assert_int_equal(rc, -ENOMEM);
                assert_true(n <= allocs);
            }
            assert_int_equal(n, allocs + 1);
        }
    }
    /* A context broken by a failure comes back with a reset. */
    hp_compress_t *c = new_or_fail(HP_COMPRESS_BROTLI, 5, 0, 0);
    hp_compress_io_t io = {.next_in = text, .avail_in = len};
    o.n = 0;
    hp_alloc_fail_after(1, 1);
    int rc = run_op(hp_compress_finish, c, &io, &o, 4096);
    hp_alloc_fail_after(0, 0);
    assert_int_equal(rc, -ENOMEM);
    assert_int_equal(hp_compress_reset(c), 0);
    io = (hp_compress_io_t){.next_in = text, .avail_in = len};
    o.n = 0;
    assert_int_equal(run_op(hp_compress_finish, c, &io, &o, 4096), 0);
    check_decodes(HP_COMPRESS_BROTLI, 0, o.p, o.n, false, text, len);
    hp_compress_free(c);
    free(o.p);
    free(text);
    assert_int_equal(live_blocks(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_same_bytes_as_zlib),
        cmocka_unit_test(test_every_split),   cmocka_unit_test(test_streaming_pieces),
        cmocka_unit_test(test_sync_flush),    cmocka_unit_test(test_reset),
        cmocka_unit_test(test_invalid),       cmocka_unit_test(test_oom_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
