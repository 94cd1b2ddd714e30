/*
 * compress.h - streaming compression, independent of any protocol: gzip,
 * zlib and raw deflate (zlib) and brotli (libbrotlienc).
 *
 * HTTP response bodies (http_encoding.h) and WebSocket permessage-deflate
 * (RFC 7692) both compress through an hp_compress_t. The caller drives it
 * with an hp_compress_io_t cursor, as with zlib's z_stream: each call
 * consumes input from next_in and writes output at next_out, advancing both
 * and reporting what is left. Output goes straight into the caller's
 * buffer; when it fills, the call returns HP_COMPRESS_FULL and the caller
 * gives fresh room (the next pooled chunk, or the same buffer grown) and
 * calls the same function again. So a body can be compressed into
 * fixed-size chunks without a copy.
 *
 * The decompressing side is decompress.h.
 *
 * Every allocation (zlib's, brotli's, the context's) goes through
 * hp_malloc/hp_free, so allocation-failure injection reaches it. A context
 * belongs to one thread at a time; there is no shared state.
 *
 * Link with -lz -lbrotlienc.
 */
#ifndef HOTPATH_COMPRESS_H
#define HOTPATH_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"

/* Stream formats. GZIP, ZLIB and DEFLATE are the same deflate data
 * (RFC 1951) in a gzip member (RFC 1952), in a zlib stream (RFC 1950), or
 * bare, as permessage-deflate sends it. BROTLI is RFC 7932. */
typedef enum {
    HP_COMPRESS_GZIP = 1,
    HP_COMPRESS_ZLIB,
    HP_COMPRESS_DEFLATE,
    HP_COMPRESS_BROTLI,
} hp_compress_algo_t;

/* Parameters of a compressor. Zero in window_bits or mem_level means the
 * default named below, so a plain initialiser needs only algo and level.
 *
 *   level        zlib level 0..9 (0 stores, 6 is zlib's default) for the
 *                deflate formats; brotli quality 0..11 (10 and 11 are for
 *                offline precompression, two orders of magnitude slower).
 *   window_bits  deflate formats: log2 of the window, 8..15 (default 15).
 *                zlib's deflate cannot run a 256-byte window and uses 512
 *                bytes for 8; it never reaches further back than the
 *                window minus 262 bytes, so the output stays within 250
 *                bytes of history and is valid for a peer that only keeps
 *                256 (permessage-deflate's *_max_window_bits=8). With the
 *                zlib wrapper the header then announces 512.
 *                brotli: lgwin, 10..24 (default 22).
 *   mem_level    deflate formats: zlib's memLevel 1..9 (default 8); the
 *                state takes about 2^(window_bits+2) + 2^(mem_level+9)
 *                bytes. Ignored by brotli.
 *   size_hint    brotli: expected total input (0: unknown), which tunes
 *                the encoder's heuristics only. Ignored by deflate. */
typedef struct {
    hp_compress_algo_t algo;
    int level;
    int window_bits;
    int mem_level;
    uint64_t size_hint;
} hp_compress_opts_t;

/* The caller's cursor over input and output, advanced by every call. The
 * buffers are borrowed: the context keeps no pointer into them between
 * calls. next_in may be NULL when avail_in is 0, next_out when avail_out
 * is 0. */
typedef struct {
    const uint8_t *next_in;
    size_t avail_in;
    uint8_t *next_out; /* OUT */
    size_t avail_out;
} hp_compress_io_t;

/* Returned (besides 0 and -errno) when the output room ran out before the
 * call's work was done: give more room in io->next_out/avail_out, keep the
 * unconsumed input in io, and call the same function again. */
#define HP_COMPRESS_FULL 1

typedef struct hp_compress hp_compress_t;

/* Creates a compressor in *out (owned by the caller, released with
 * hp_compress_free). Returns 0, -EINVAL for a parameter out of range, or
 * -ENOMEM (nothing allocated then, *out untouched). */
HP_EXPORT int hp_compress_new(hp_compress_t **out, const hp_compress_opts_t *opts);

/* Compresses input from io without forcing output: the compressor keeps
 * what it needs to find matches and writes what it has ready.
 * Returns 0 once all of io's input is consumed (output may still be held
 * inside: a flush or finish writes it), HP_COMPRESS_FULL when the output
 * room is full with input left, -EINVAL after finish (until a reset) or
 * after an earlier -ENOMEM, or -ENOMEM (brotli only; the context must then
 * be reset or freed). */
HP_EXPORT int hp_compress_feed(hp_compress_t *c, hp_compress_io_t *io);

/* Like feed, then writes everything compressed so far, ending on a byte
 * boundary so that the peer can decode all input given up to here.
 * Returns 0 when that is done, HP_COMPRESS_FULL to be called again with
 * more room (and the same io), or an error as feed.
 *
 * Deflate formats: the bytes of zlib's Z_SYNC_FLUSH, so the output ends
 * with an empty stored block, the four bytes 00 00 ff ff, written once
 * whatever the room (even 1 byte at a time), and written by every flush,
 * one with nothing new included. permessage-deflate (RFC 7692 §7.2.1)
 * sends a message without them: the caller strips those last four bytes
 * of the message; the receiver appends them before inflating.
 * brotli: BROTLI_OPERATION_FLUSH (the output ends with an empty metablock
 * where needed; nothing to strip). */
HP_EXPORT int hp_compress_flush(hp_compress_t *c, hp_compress_io_t *io);

/* Like feed, then ends the stream (gzip/zlib trailer, final deflate block,
 * brotli's last metablock). Returns 0 when the stream is complete,
 * HP_COMPRESS_FULL to be called again with more room and no new input, or
 * an error as feed. After 0 only hp_compress_reset or hp_compress_free
 * may follow. A whole buffer given to one call with enough room gives the
 * same bytes as zlib's deflate(Z_FINISH) or brotli's FINISH over it. */
HP_EXPORT int hp_compress_finish(hp_compress_t *c, hp_compress_io_t *io);

/* Starts a new stream on the same context with the same parameters,
 * forgetting all history (permessage-deflate's *_no_context_takeover
 * resets after each message; with context takeover a message just ends
 * with a flush). Also the way back from an -ENOMEM.
 * Deflate formats keep their allocation: no allocation, returns 0.
 * brotli has no reset in its API, so its encoder is rebuilt lazily on the
 * next call: returns 0, and that call may fail with -ENOMEM. */
HP_EXPORT int hp_compress_reset(hp_compress_t *c);

/* Releases c and all it holds. NULL is ignored. */
HP_EXPORT void hp_compress_free(hp_compress_t *c);

#endif
