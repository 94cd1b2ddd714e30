/*
 * fuzz_compress.c - libFuzzer target for the decompressing side of the
 * codec (src/codec/decompress.c), and the compressing side on what it
 * decodes (src/codec/compress.c).
 *
 * Input: byte 0 picks the format (bits 0-1: gzip, zlib, raw deflate,
 * brotli), the window (bits 2-4: 8 + n; for zlib n = 0 means the header's)
 * and a level for the re-compression (bits 5-7); byte 1 picks the sizes of
 * the pieces and rooms of the second decoding; the rest is the compressed
 * stream, copied to a heap block of exactly its length so ASan catches any
 * read past the end.
 * Checks: every result is one the header documents; no more than one byte
 * past the limit is ever written; decoding whole and decoding in pieces
 * into small rooms agree on the result and the bytes (unless the limit
 * stopped one of them; before an error, on the bytes both wrote; with a
 * small window, see below); a stream that ends decodes again, after
 * hp_compress, to the same bytes.
 */
#include "hotpath/compress.h"
#include "hotpath/decompress.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The limit: large enough for real messages, small enough that a bomb is
 * stopped quickly. */
#define LIMIT (256 * 1024)

static const hp_compress_algo_t algos[4] = {HP_COMPRESS_GZIP, HP_COMPRESS_ZLIB,
                                            HP_COMPRESS_DEFLATE, HP_COMPRESS_BROTLI};

static void check_rc(int rc)
{
    if (rc != 0 && rc != HP_DECOMPRESS_FULL && rc != HP_DECOMPRESS_END && rc != -EMSGSIZE &&
        rc != -EBADMSG)
        abort(); /* -ENOMEM or -EINVAL: neither can happen here */
}

/* Decodes z[0..zn) into out[0..LIMIT + 1) in pieces of `piece` bytes and
 * rooms of `room` bytes (0: all at once). Returns the result that ended
 * it and the bytes written in *n. */
static int decode(const hp_decompress_opts_t *o, const uint8_t *z, size_t zn, size_t piece,
                  size_t room, uint8_t *out, size_t *n)
{
    hp_decompress_t *d;
    if (hp_decompress_new(&d, o) != 0)
        abort();
    size_t at = 0, w = 0, cap = LIMIT + 1;
    int rc = 0;
    do {
        size_t k = piece && piece < zn - at ? piece : zn - at;
        hp_compress_io_t io = {.next_in = z + at, .avail_in = k};
        do {
            size_t r = room && room < cap - w ? room : cap - w;
            io.next_out = out + w;
            io.avail_out = r;
            rc = hp_decompress_feed(d, &io);
            check_rc(rc);
            if (io.avail_out > r)
                abort();
            w += r - io.avail_out;
        } while (rc == HP_DECOMPRESS_FULL && w < cap);
        at += k - io.avail_in;
        if (rc != 0 || io.avail_in != 0)
            break;
    } while (at < zn);
    if (w > LIMIT + 1 || hp_decompress_total(d) != w)
        abort();
    if (rc == -EMSGSIZE && w <= LIMIT)
        abort();
    /* An error sticks. */
    if (rc < 0) {
        hp_compress_io_t none = {0};
        if (hp_decompress_feed(d, &none) != rc)
            abort();
    }
    hp_decompress_free(d);
    *n = w;
    return rc;
}

/* Compresses in[0..n) and checks that it decodes back to the same. */
static void recompress(hp_compress_algo_t algo, int wbits, int level, const uint8_t *in, size_t n)
{
    hp_compress_opts_t co = {.algo = algo, .level = level, .window_bits = wbits};
    if (algo == HP_COMPRESS_BROTLI)
        co.window_bits = 16;
    hp_compress_t *c;
    if (hp_compress_new(&c, &co) != 0)
        abort();
    size_t cap = n + n / 8 + 64;
    uint8_t *z = malloc(cap);
    uint8_t *back = malloc(n + 1);
    if (!z || !back)
        abort();
    /* Half, a sync flush, the rest, the end. */
    hp_compress_io_t io = {.next_in = in, .avail_in = n / 2, .next_out = z, .avail_out = cap};
    if (hp_compress_flush(c, &io) != 0)
        abort();
    io.avail_in = n - n / 2;
    if (hp_compress_finish(c, &io) != 0 || io.avail_in != 0)
        abort();
    size_t zn = cap - io.avail_out;
    hp_compress_free(c);

    hp_decompress_opts_t o = {.algo = algo, .window_bits = algo == HP_COMPRESS_BROTLI ? 0 : wbits,
                              .max_out = n ? n : 1};
    hp_decompress_t *d;
    if (hp_decompress_new(&d, &o) != 0)
        abort();
    io = (hp_compress_io_t){.next_in = z, .avail_in = zn, .next_out = back, .avail_out = n + 1};
    if (hp_decompress_feed(d, &io) != HP_DECOMPRESS_END || io.avail_out != 1 || io.avail_in != 0 ||
        memcmp(back, in, n) != 0)
        abort();
    hp_decompress_free(d);
    free(back);
    free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    hp_compress_algo_t algo = algos[data[0] & 3];
    int n = (data[0] >> 2) & 7;
    int wbits = algo == HP_COMPRESS_BROTLI ? 0 : algo == HP_COMPRESS_ZLIB && n == 0 ? 0 : 8 + n;
    int level = data[0] >> 5;
    size_t piece = 1 + (size_t)(data[1] & 15) * 17, room = 1 + (size_t)(data[1] >> 4) * 61;
    size_t zn = size - 2;
    uint8_t *z = malloc(zn ? zn : 1);
    uint8_t *a = malloc(LIMIT + 1), *b = malloc(LIMIT + 1);
    if (!z || !a || !b)
        abort();
    memcpy(z, data + 2, zn);

    hp_decompress_opts_t o = {.algo = algo, .window_bits = wbits, .max_out = LIMIT};
    size_t an, bn;
    int ra = decode(&o, z, zn, 0, 0, a, &an);
    int rb = decode(&o, z, zn, piece, room, b, &bn);
    /* How much of the output before an error gets written depends on the
     * cuts (zlib's fast path stops at a bad code within a run); what is
     * written agrees. A deflate window under 32 KiB is checked against
     * what zlib holds, which includes the call's own output: so a stream
     * that reaches too far back may decode whole and fail in pieces (never
     * the other way round). */
    bool lenient = algo != HP_COMPRESS_BROTLI && wbits != 15;
    if (ra != -EMSGSIZE && rb != -EMSGSIZE) {
        if (memcmp(a, b, an < bn ? an : bn) != 0)
            abort();
        if (ra != rb && !(lenient && rb == -EBADMSG))
            abort();
        if (ra == rb && ra != -EBADMSG && an != bn)
            abort();
    }
    if (ra == HP_DECOMPRESS_END)
        recompress(algo, wbits ? wbits : 15, level, a, an);
    free(b);
    free(a);
    free(z);
    return 0;
}
