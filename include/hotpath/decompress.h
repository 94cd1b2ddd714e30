/*
 * decompress.h - streaming decompression with an output limit: gzip, zlib
 * and raw deflate (zlib's inflate) and brotli (libbrotlidec).
 *
 * The counterpart of compress.h, driven by the same hp_compress_io_t
 * cursor. Every stream has a limit on what it may produce, so that a small
 * input that expands without bound (a decompression bomb) is refused with
 * -EMSGSIZE as soon as it passes the limit, having written at most one
 * byte more than the limit into the caller's room. WebSocket passes its
 * maximum message size.
 *
 * Every allocation goes through hp_malloc/hp_free. A context belongs to
 * one thread at a time.
 *
 * Link with -lz -lbrotlidec.
 */
#ifndef HOTPATH_DECOMPRESS_H
#define HOTPATH_DECOMPRESS_H

#include "hotpath/common.h"
#include "hotpath/compress.h"

#include <stdint.h>

/* Parameters of a decompressor.
 *
 *   algo         the stream format (compress.h).
 *   window_bits  deflate formats: log2 of the window the stream was made
 *                with, 8..15 (0: 15): the history kept between calls. A
 *                stream that reaches further back fails with -EBADMSG
 *                unless the bytes it points to were written by the same
 *                call (zlib checks distances against what it holds, not
 *                against the window), so a peer that breaks its window is
 *                caught or decoded correctly, never read out of bounds.
 *                For ZLIB, 0 takes the window from the stream's header,
 *                and a header asking for more than window_bits is
 *                -EBADMSG. brotli: must be 0 (the stream says).
 *   max_out      the most bytes one stream may decompress to, 1 or more
 *                (UINT64_MAX for no limit). */
typedef struct {
    hp_compress_algo_t algo;
    int window_bits;
    uint64_t max_out;
} hp_decompress_opts_t;

/* Returned (besides 0 and -errno) when the output room ran out: give more
 * room and call again with the rest of the input. The decoder may hold
 * more output even when all input is consumed. */
#define HP_DECOMPRESS_FULL 1
/* Returned when the stream's end was reached: all its output is written.
 * Any bytes after the end stay in io (unconsumed). */
#define HP_DECOMPRESS_END 2

typedef struct hp_decompress hp_decompress_t;

/* Creates a decompressor in *out (owned by the caller, released with
 * hp_decompress_free). Returns 0, -EINVAL for a parameter out of range,
 * or -ENOMEM (nothing allocated then, *out untouched). */
HP_EXPORT int hp_decompress_new(hp_decompress_t **out, const hp_decompress_opts_t *opts);

/* Decompresses input from io into io's room. Returns
 *   0                   all input consumed, the stream not ended: feed
 *                       more (a raw deflate stream from permessage-deflate
 *                       never ends: the receiver appends 00 00 ff ff to a
 *                       message and reads until 0 comes back);
 *   HP_DECOMPRESS_FULL  the room is full: call again with more;
 *   HP_DECOMPRESS_END   the stream ended (and again on any later call,
 *                       until a reset);
 *   -EMSGSIZE           the stream would decompress to more than max_out;
 *   -EBADMSG            the input is not a valid stream of the format
 *                       (a bad header, checksum, code or distance);
 *   -ENOMEM             the decoder could not allocate (zlib allocates its
 *                       window on the first output, brotli as it goes).
 * After an error the context only answers that error until a reset. The
 * bytes written before an error are the stream's, but how many of them
 * were written can depend on how input and room were cut. */
HP_EXPORT int hp_decompress_feed(hp_decompress_t *d, hp_compress_io_t *io);

/* Bytes produced since the context was made, reset, or its limit
 * restarted. */
HP_EXPORT uint64_t hp_decompress_total(const hp_decompress_t *d);

/* Restarts the count that max_out limits, keeping the stream and its
 * history: permessage-deflate with context takeover calls it before each
 * message, as its limit is per message while the stream goes on. An
 * error the context stopped on stays (-EMSGSIZE included). */
HP_EXPORT void hp_decompress_restart_limit(hp_decompress_t *d);

/* Starts a new stream with the same parameters: history, the byte count
 * and any error are forgotten. zlib keeps its state and window (no
 * allocation, returns 0); brotli has no reset in its API, so its decoder is
 * rebuilt: returns 0 or -ENOMEM (then the next feed tries again). */
HP_EXPORT int hp_decompress_reset(hp_decompress_t *d);

/* Releases d and all it holds. NULL is ignored. */
HP_EXPORT void hp_decompress_free(hp_decompress_t *d);

#endif
