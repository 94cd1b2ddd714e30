/*
 * test_decompress.c - unit tests for streaming decompression with an
 * output limit (src/codec/decompress.c).
 *
 * Inputs are made with zlib and brotli called directly (and, for
 * permessage-deflate, with hp_compress, whose own tests check it against
 * the libraries). Covered: round trips for each format whole, at every
 * split of the compressed input, byte by byte into one-byte rooms and in
 * random pieces; a stream cut short gives all it can into small rooms
 * before asking for input; the window (a stream reaching further back
 * than allowed is corrupt; window 8 works); permessage-deflate messages with and
 * without context takeover, the limit per message; the output limit
 * (exactly the limit passes, one byte less is -EMSGSIZE, a bomb stops at
 * the limit); corrupt input
 * (checksums, bad blocks, byte flips, a preset dictionary) is -EBADMSG
 * and stays so until a reset; bytes after the end stay unconsumed;
 * argument errors; an out-of-memory sweep that leaks nothing.
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

#include <brotli/encode.h>

#include "codec_harness.h"
#include "hotpath/compress.h"
#include "hotpath/decompress.h"

static const hp_compress_algo_t algos[] = {HP_COMPRESS_GZIP, HP_COMPRESS_ZLIB,
                                           HP_COMPRESS_DEFLATE, HP_COMPRESS_BROTLI};
#define NALGOS (sizeof(algos) / sizeof(algos[0]))

/* in[0..len) compressed with the library itself into a malloc'd buffer
 * (*zn bytes), as one complete stream. */
static uint8_t *ref_compress(hp_compress_algo_t algo, int wbits, const uint8_t *in, size_t len,
                             size_t *zn)
{
    size_t cap = len + len / 2 + 1024;
    uint8_t *z = malloc(cap);
    assert_non_null(z);
    if (algo == HP_COMPRESS_BROTLI) {
        *zn = cap;
        assert_true(BrotliEncoderCompress(5, wbits ? wbits : 22, BROTLI_MODE_GENERIC, len, in, zn,
                                          z));
        return z;
    }
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, ref_wbits(algo, wbits ? wbits : 15), 8,
                                  Z_DEFAULT_STRATEGY),
                     Z_OK);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = z;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *zn = zs.total_out;
    deflateEnd(&zs);
    return z;
}

static hp_decompress_t *dnew(hp_compress_algo_t algo, int wbits, uint64_t max_out)
{
    hp_decompress_opts_t o = {.algo = algo, .window_bits = wbits, .max_out = max_out};
    hp_decompress_t *d = NULL;
    int rc = hp_decompress_new(&d, &o);
    if (rc != 0)
        fail_msg("hp_decompress_new(algo %d window %d): %d", (int)algo, wbits, rc);
    return d;
}

/* Feeds z[0..zn) in pieces of 1..piece_max bytes (all at once when 0)
 * into rooms of 1..room_max bytes of out[0..cap); returns the last result
 * and the bytes written in *n. Stops at the end or an error. */
static int decode_pieces(hp_decompress_t *d, const uint8_t *z, size_t zn, size_t piece_max,
                         size_t room_max, uint8_t *out, size_t cap, size_t *n)
{
    size_t at = 0, w = 0;
    int rc = 0;
    do {
        size_t k = piece_max ? 1 + (size_t)(rng() % piece_max) : zn - at;
        if (k > zn - at)
            k = zn - at;
        hp_compress_io_t io = {.next_in = z + at, .avail_in = k};
        do {
            size_t room = room_max > 1 ? 1 + (size_t)(rng() % room_max) : 1;
            if (room > cap - w)
                room = cap - w;
            io.next_out = out + w;
            io.avail_out = room;
            rc = hp_decompress_feed(d, &io);
            assert_true(io.avail_out <= room);
            w += room - io.avail_out;
        } while (rc == HP_DECOMPRESS_FULL && w < cap);
        at += k - io.avail_in;
        if (rc != 0 || io.avail_in != 0)
            break;
    } while (at < zn);
    *n = w;
    return rc;
}

static void test_round_trip(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 1000, 100000};
    size_t max = 100000;
    uint8_t *text = malloc(max), *out = malloc(max + 64);
    assert_true(text && out);
    fill_text(text, max);
    for (size_t a = 0; a < NALGOS; a++) {
        hp_decompress_t *d = dnew(algos[a], 0, max);
        for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
            size_t len = sizes[si], zn, n;
            uint8_t *z = ref_compress(algos[a], 0, text, len, &zn);
            /* Whole, into exactly the room needed. */
            assert_int_equal(decode_pieces(d, z, zn, 0, len + 1, out, len + 1, &n),
                             HP_DECOMPRESS_END);
            assert_int_equal(n, len);
            assert_memory_equal(out, text, len);
            assert_int_equal(hp_decompress_total(d), len);
            /* Again after the end: END, nothing consumed or written. */
            hp_compress_io_t io = {.next_in = z, .avail_in = zn, .next_out = out,
                                   .avail_out = 10};
            assert_int_equal(hp_decompress_feed(d, &io), HP_DECOMPRESS_END);
            assert_true(io.avail_in == zn && io.avail_out == 10);
            /* Byte by byte into one-byte rooms (the small inputs), then in
             * random pieces into random rooms. */
            if (len <= 1000) {
                assert_int_equal(hp_decompress_reset(d), 0);
                assert_int_equal(decode_pieces(d, z, zn, 1, 1, out, max + 64, &n),
                                 HP_DECOMPRESS_END);
                assert_int_equal(n, len);
                assert_memory_equal(out, text, len);
            }
            for (int round = 0; round < 10; round++) {
                assert_int_equal(hp_decompress_reset(d), 0);
                assert_int_equal(decode_pieces(d, z, zn, 1 + rng() % 2000, 1 + rng() % 5000, out,
                                               max + 64, &n),
                                 HP_DECOMPRESS_END);
                assert_int_equal(n, len);
                assert_memory_equal(out, text, len);
            }
            assert_int_equal(hp_decompress_reset(d), 0);
            free(z);
        }
        hp_decompress_free(d);
    }
    free(out);
    free(text);
    assert_int_equal(live_blocks(), 0);
}

/* A stream cut short, fed whole into small rooms: when the call says it
 * needs input (0), everything decodable so far is out, as much as a
 * decoder with all the room in the world gives. Brotli's decoder asks for
 * input while it still holds output. */
static void test_truncated_small_rooms(void **state)
{
    (void)state;
    uint8_t text[6000], out[6100];
    fill_text(text, sizeof(text));
    for (size_t a = 0; a < NALGOS; a++) {
        size_t zn, full, n;
        uint8_t *z = ref_compress(algos[a], 0, text, sizeof(text), &zn);
        for (size_t cut = zn / 4; cut < zn; cut += zn / 4) {
            hp_decompress_t *d = dnew(algos[a], 0, sizeof(out));
            hp_compress_io_t io = {.next_in = z, .avail_in = cut, .next_out = out,
                                   .avail_out = sizeof(out)};
            assert_int_equal(hp_decompress_feed(d, &io), 0);
            full = sizeof(out) - io.avail_out;
            for (size_t room = 1; room <= 64; room *= 4) {
                assert_int_equal(hp_decompress_reset(d), 0);
                assert_int_equal(decode_pieces(d, z, cut, 0, room, out, sizeof(out), &n), 0);
                assert_int_equal(n, full);
                assert_memory_equal(out, text, n);
            }
            hp_decompress_free(d);
        }
        free(z);
    }
    assert_int_equal(live_blocks(), 0);
}

/* Two feeds split at every offset of the compressed stream. */
static void test_every_split(void **state)
{
    (void)state;
    uint8_t text[3000], out[3100];
    fill_text(text, sizeof(text));
    for (size_t a = 0; a < NALGOS; a++) {
        size_t zn;
        uint8_t *z = ref_compress(algos[a], 0, text, sizeof(text), &zn);
        hp_decompress_t *d = dnew(algos[a], 0, sizeof(text));
        for (size_t k = 0; k <= zn; k++) {
            hp_compress_io_t io = {.next_in = z, .avail_in = k, .next_out = out,
                                   .avail_out = sizeof(out)};
            int rc = hp_decompress_feed(d, &io);
            assert_int_equal(rc, k == zn ? HP_DECOMPRESS_END : 0);
            assert_int_equal(io.avail_in, 0);
            io.next_in = z + k;
            io.avail_in = zn - k;
            if (k < zn)
                assert_int_equal(hp_decompress_feed(d, &io), HP_DECOMPRESS_END);
            assert_int_equal(sizeof(out) - io.avail_out, sizeof(text));
            assert_memory_equal(out, text, sizeof(text));
            assert_int_equal(hp_decompress_reset(d), 0);
        }
        hp_decompress_free(d);
        free(z);
    }
    assert_int_equal(live_blocks(), 0);
}

static void test_window(void **state)
{
    (void)state;
    /* 600 bytes repeated after 4000 bytes of noise: a 32 KiB window finds
     * the repeat 4600 bytes back; a 4 KiB decoder may not follow it. */
    uint8_t in[5200], out[5300];
    fill_text(in, 600);
    fill_random(in + 600, 4000);
    memcpy(in + 4600, in, 600);
    for (size_t a = 0; a < 3; a++) {
        size_t zn, n;
        uint8_t *z = ref_compress(algos[a], 15, in, sizeof(in), &zn);
        hp_decompress_t *d = dnew(algos[a], 12, sizeof(out));
        /* One-byte rooms, so that the repeat is only in the history zlib
         * keeps (a call may also reach back into its own output). A zlib
         * header that asks for more than the window is refused there; the
         * others fail at the distance. */
        int rc = decode_pieces(d, z, zn, 0, 1, out, sizeof(out), &n);
        assert_int_equal(rc, -EBADMSG);
        assert_int_equal(hp_decompress_feed(d, &(hp_compress_io_t){0}), -EBADMSG);
        hp_decompress_free(d);
        d = dnew(algos[a], 15, sizeof(out));
        assert_int_equal(decode_pieces(d, z, zn, 0, sizeof(out), out, sizeof(out), &n),
                         HP_DECOMPRESS_END);
        assert_int_equal(n, sizeof(in));
        assert_memory_equal(out, in, sizeof(in));
        hp_decompress_free(d);
        free(z);
    }
    /* ZLIB with window 0 reads the header's. */
    size_t zn, n;
    uint8_t *z = ref_compress(HP_COMPRESS_ZLIB, 15, in, sizeof(in), &zn);
    hp_decompress_t *d = dnew(HP_COMPRESS_ZLIB, 0, sizeof(out));
    assert_int_equal(decode_pieces(d, z, zn, 0, sizeof(out), out, sizeof(out), &n),
                     HP_DECOMPRESS_END);
    hp_decompress_free(d);
    free(z);

    /* hp_compress at window 8 decodes in a 256-byte window, which is what
     * permessage-deflate's *_max_window_bits=8 promises the peer. */
    uint8_t text[20000], back[20100];
    fill_text(text, sizeof(text));
    for (size_t a = 0; a < 3; a++) {
        hp_compress_opts_t co = {.algo = algos[a], .level = 9, .window_bits = 8, .mem_level = 9};
        hp_compress_t *c;
        assert_int_equal(hp_compress_new(&c, &co), 0);
        uint8_t *zz = malloc(sizeof(text) + 1024);
        assert_non_null(zz);
        hp_compress_io_t io = {.next_in = text, .avail_in = sizeof(text), .next_out = zz,
                               .avail_out = sizeof(text) + 1024};
        assert_int_equal(hp_compress_finish(c, &io), 0);
        hp_compress_free(c);
        size_t zzn = sizeof(text) + 1024 - io.avail_out;
        d = dnew(algos[a], algos[a] == HP_COMPRESS_ZLIB ? 0 : 8, sizeof(text));
        assert_int_equal(decode_pieces(d, zz, zzn, 0, sizeof(back), back, sizeof(back), &n),
                         HP_DECOMPRESS_END);
        assert_int_equal(n, sizeof(text));
        assert_memory_equal(back, text, sizeof(text));
        hp_decompress_free(d);
        free(zz);
    }
    assert_int_equal(live_blocks(), 0);
}

/* permessage-deflate both ways: hp_compress flushes and strips, the
 * receiver appends 00 00 ff ff and reads until 0. */
static void test_permessage_deflate(void **state)
{
    (void)state;
    uint8_t msgs[5][2000], z[4000], back[2100];
    static const size_t lens[5] = {2000, 0, 1, 2000, 700};
    for (size_t i = 0; i < 5; i++)
        fill_text(msgs[i], lens[i]);
    memcpy(msgs[3], msgs[0], 2000);
    for (int takeover = 0; takeover <= 1; takeover++) {
        hp_compress_opts_t co = {.algo = HP_COMPRESS_DEFLATE, .level = 6};
        hp_compress_t *c;
        assert_int_equal(hp_compress_new(&c, &co), 0);
        hp_decompress_t *d = dnew(HP_COMPRESS_DEFLATE, 15, 2000);
        for (size_t i = 0; i < 5; i++) {
            hp_compress_io_t io = {.next_in = msgs[i], .avail_in = lens[i], .next_out = z,
                                   .avail_out = sizeof(z)};
            assert_int_equal(hp_compress_flush(c, &io), 0);
            size_t zn = sizeof(z) - io.avail_out;
            assert_true(zn >= 4 && memcmp(z + zn - 4, "\x00\x00\xff\xff", 4) == 0);
            /* Stripping the tail for the wire and appending it again at
             * the receiver gives back these bytes: the message ends where
             * the tail is read, and 0 says all of it is out. */
            size_t n;
            assert_int_equal(decode_pieces(d, z, zn, 3, 100, back, sizeof(back), &n), 0);
            assert_int_equal(n, lens[i]);
            assert_memory_equal(back, msgs[i], lens[i]);
            /* The limit is per message: 2000 each, not in all. */
            assert_int_equal(hp_decompress_total(d), lens[i]);
            hp_decompress_restart_limit(d);
            if (!takeover) {
                assert_int_equal(hp_compress_reset(c), 0);
                assert_int_equal(hp_decompress_reset(d), 0);
            }
        }
        hp_compress_free(c);
        hp_decompress_free(d);
    }
    assert_int_equal(live_blocks(), 0);
}

static void test_limit(void **state)
{
    (void)state;
    size_t len = 1 << 20;
    uint8_t *zeros = calloc(1, len), *out = malloc(len + 64);
    assert_true(zeros && out);
    for (size_t a = 0; a < NALGOS; a++) {
        size_t zn, n;
        uint8_t *z = ref_compress(algos[a], 0, zeros, len, &zn);
        assert_true(zn < len / 100); /* a small bomb */

        /* Exactly the limit passes. */
        hp_decompress_t *d = dnew(algos[a], 0, len);
        assert_int_equal(decode_pieces(d, z, zn, 0, len + 64, out, len + 64, &n),
                         HP_DECOMPRESS_END);
        assert_int_equal(n, len);
        hp_decompress_free(d);

        /* One byte less is refused, having written at most one byte past
         * the limit, and stays refused until a reset. Whole input and
         * room, then in pieces. */
        static const uint64_t limits[] = {(uint64_t)(1 << 20) - 1, 65536, 1000, 1};
        for (size_t li = 0; li < 4; li++) {
            d = dnew(algos[a], 0, limits[li]);
            for (int pieces = 0; pieces <= 1; pieces++) {
                int rc = decode_pieces(d, z, zn, pieces ? 7 : 0, pieces ? 3000 : len + 64, out,
                                       len + 64, &n);
                assert_int_equal(rc, -EMSGSIZE);
                assert_true(n <= limits[li] + 1);
                assert_true(hp_decompress_total(d) <= limits[li] + 1);
                hp_compress_io_t io = {.next_in = z, .avail_in = zn, .next_out = out,
                                       .avail_out = 100};
                assert_int_equal(hp_decompress_feed(d, &io), -EMSGSIZE);
                assert_int_equal(hp_decompress_reset(d), 0);
                assert_int_equal(hp_decompress_total(d), 0);
            }
            hp_decompress_free(d);
        }
        free(z);
    }
    free(out);
    free(zeros);
    assert_int_equal(live_blocks(), 0);
}

static void test_corrupt(void **state)
{
    (void)state;
    uint8_t text[2000], out[2100];
    fill_text(text, sizeof(text));
    for (size_t a = 0; a < NALGOS; a++) {
        size_t zn, n;
        uint8_t *z = ref_compress(algos[a], 0, text, sizeof(text), &zn);
        hp_decompress_t *d = dnew(algos[a], 0, sizeof(out));
        /* Every single-byte change: decodes to something (possibly the
         * text), needs more, or is corrupt; never more than the limit or
         * another error. The checksummed formats catch each change in the
         * trailer. */
        int bad = 0;
        for (size_t i = 0; i < zn; i++) {
            z[i] ^= 0x5a;
            int rc = decode_pieces(d, z, zn, 0, sizeof(out), out, sizeof(out), &n);
            z[i] ^= 0x5a;
            assert_true(rc == 0 || rc == HP_DECOMPRESS_END || rc == -EBADMSG ||
                        rc == -EMSGSIZE);
            bad += rc == -EBADMSG;
            if (rc == -EBADMSG)
                assert_int_equal(hp_decompress_feed(d, &(hp_compress_io_t){0}), -EBADMSG);
            if (i + 4 >= zn && algos[a] != HP_COMPRESS_DEFLATE && algos[a] != HP_COMPRESS_BROTLI)
                assert_int_equal(rc, -EBADMSG);
            assert_int_equal(hp_decompress_reset(d), 0);
        }
        assert_true(bad > 0);
        /* Bytes after the end are left in io. */
        uint8_t *zt = malloc(zn + 3);
        assert_non_null(zt);
        memcpy(zt, z, zn);
        memcpy(zt + zn, "xyz", 3);
        hp_compress_io_t io = {.next_in = zt, .avail_in = zn + 3, .next_out = out,
                               .avail_out = sizeof(out)};
        assert_int_equal(hp_decompress_feed(d, &io), HP_DECOMPRESS_END);
        assert_int_equal(io.avail_in, 3);
        assert_true(io.next_in == zt + zn);
        free(zt);
        hp_decompress_free(d);
        free(z);
    }
    /* Hand-made: a deflate block of the reserved type 3; a zlib header
     * that needs a preset dictionary; a gzip header with a bad method;
     * a brotli stream that opens with the large-window marker, which a
     * standard decoder refuses. */
    static const struct {
        hp_compress_algo_t algo;
        uint8_t b[8];
        size_t n;
    } cases[] = {
        {HP_COMPRESS_DEFLATE, {0x07, 0x00}, 2},
        {HP_COMPRESS_ZLIB, {0x78, 0xbb, 0x00, 0x00, 0x00, 0x01}, 6},
        {HP_COMPRESS_GZIP, {0x1f, 0x8b, 0x07, 0x00, 0, 0, 0, 0}, 8},
        {HP_COMPRESS_ZLIB, {0x78, 0x9d}, 2},
        {HP_COMPRESS_BROTLI, {0x11, 0x00, 0x00}, 3},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hp_decompress_t *d = dnew(cases[i].algo, 0, 100);
        size_t n;
        int rc = decode_pieces(d, cases[i].b, cases[i].n, 0, 100, out, 100, &n);
        if (rc != -EBADMSG)
            fail_msg("case %zu: %d", i, rc);
        hp_decompress_free(d);
    }
    assert_int_equal(live_blocks(), 0);
}

static void test_invalid(void **state)
{
    (void)state;
    static const hp_decompress_opts_t bad[] = {
        {.algo = 0, .max_out = 10},
        {.algo = HP_COMPRESS_BROTLI + 1, .max_out = 10},
        {.algo = HP_COMPRESS_GZIP, .max_out = 0},
        {.algo = HP_COMPRESS_GZIP, .window_bits = 7, .max_out = 10},
        {.algo = HP_COMPRESS_DEFLATE, .window_bits = 16, .max_out = 10},
        {.algo = HP_COMPRESS_ZLIB, .window_bits = -15, .max_out = 10},
        {.algo = HP_COMPRESS_BROTLI, .window_bits = 22, .max_out = 10},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hp_decompress_t *d = NULL;
        assert_int_equal(hp_decompress_new(&d, &bad[i]), -EINVAL);
        assert_null(d);
    }
    hp_decompress_free(NULL);
    /* No limit at all, spelt out. */
    hp_decompress_t *d = dnew(HP_COMPRESS_GZIP, 0, UINT64_MAX);
    uint8_t text[1000], out[1000];
    fill_text(text, sizeof(text));
    size_t zn, n;
    uint8_t *z = ref_compress(HP_COMPRESS_GZIP, 0, text, sizeof(text), &zn);
    assert_int_equal(decode_pieces(d, z, zn, 0, sizeof(out), out, sizeof(out), &n),
                     HP_DECOMPRESS_END);
    free(z);
    hp_decompress_free(d);
    assert_int_equal(live_blocks(), 0);
}

/* One stream, a reset, a second; returns the first error (or 0), having
 * freed everything. */
static int oom_scenario(hp_compress_algo_t algo, const uint8_t *z, size_t zn, uint8_t *out,
                        size_t cap, size_t want)
{
    hp_decompress_opts_t o = {.algo = algo, .max_out = cap};
    hp_decompress_t *d;
    int rc = hp_decompress_new(&d, &o);
    if (rc < 0)
        return rc;
    for (int round = 0; round < 2; round++) {
        size_t n;
        rc = decode_pieces(d, z, zn, 1000, 4096, out, cap, &n);
        if (rc < 0)
            break;
        assert_int_equal(rc, HP_DECOMPRESS_END);
        assert_int_equal(n, want);
        if ((rc = hp_decompress_reset(d)) < 0)
            break;
    }
    hp_decompress_free(d);
    return rc;
}

static void test_oom_sweep(void **state)
{
    (void)state;
    size_t len = 200000;
    uint8_t *text = malloc(len), *out = malloc(len);
    assert_true(text && out);
    fill_text(text, len);
    for (size_t a = 0; a < NALGOS; a++) {
        size_t zn;
        uint8_t *z = ref_compress(algos[a], 0, text, len, &zn);
        uint64_t before = hp_alloc_count();
        assert_int_equal(oom_scenario(algos[a], z, zn, out, len, len), 0);
        uint64_t allocs = hp_alloc_count() - before;
        assert_true(allocs > 0);
        for (int sticky = 0; sticky <= 1; sticky++) {
            uint64_t n;
            for (n = 1;; n++) {
                hp_alloc_fail_after(n, sticky);
                int rc = oom_scenario(algos[a], z, zn, out, len, len);
                hp_alloc_fail_after(0, 0);
                assert_int_equal(live_blocks(), 0);
                if (rc == 0)
                    break;
                assert_int_equal(rc, -ENOMEM);
                assert_true(n <= allocs);
            }
            assert_int_equal(n, allocs + 1);
        }
        free(z);
    }
    free(out);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_truncated_small_rooms),
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_window),     cmocka_unit_test(test_permessage_deflate),
        cmocka_unit_test(test_limit),      cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_invalid),    cmocka_unit_test(test_oom_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
