/*
 * encoding_int.h - on-the-fly Content-Encoding of response bodies (gzip,
 * br) that have no precompressed sibling: which media types are worth it,
 * and a whole body compressed in one call under the rule that it must
 * save 10 %.
 *
 * The compression itself is the protocol-neutral streaming module
 * (compress.h); this is HTTP's policy on top of it. One call compresses a
 * whole body from one buffer into another: no state survives the call, and
 * the compressor's memory, routed through hp_malloc/hp_free, is released
 * before the call returns (so allocation-failure injection reaches it).
 * The coding is chosen beforehand with hp_accept_encoding (http_accept.h),
 * whose HP_ENC_* bits this module takes.
 */
#ifndef HOTPATH_ENCODING_INT_H
#define HOTPATH_ENCODING_INT_H

#include "hotpath/common.h"
#include "accept_int.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Levels accepted by hp_encoding_compress. gzip uses the level as zlib's
 * level; brotli uses it as the quality (1..9: qualities 10 and 11 are for
 * offline precompression, two orders of magnitude slower).
 * HP_ENCODING_LEVEL_DEFAULT is zlib's own default; for brotli, quality 4-5 compresses better than
 * gzip -6 at a similar speed, so a caller wanting br may pass 5. */
#define HP_ENCODING_LEVEL_MIN 1
#define HP_ENCODING_LEVEL_MAX 9
#define HP_ENCODING_LEVEL_DEFAULT 6

/* True when a body of media type `ctype` (a Content-Type value, with or
 * without parameters such as "; charset=utf-8", matched case-insensitively,
 * surrounding blanks ignored; borrowed, NUL-terminated) is worth
 * compressing:
 *   - any text/... type except text/event-stream (a stream is flushed
 *     event by event; whole-body compression would hold events back);
 *   - application/json, application/javascript, application/ecmascript,
 *     application/x-javascript, application/xml, application/xhtml+xml, and
 *     any application/...+json or application/...+xml (ld+json,
 *     manifest+json, problem+json, atom+xml, rss+xml ...);
 *   - image/svg+xml, image/x-icon, image/vnd.microsoft.icon, image/bmp
 *     (uncompressed bitmaps);
 *   - font/ttf, font/otf, font/collection, application/vnd.ms-fontobject
 *     (woff and woff2 are already compressed, so no);
 *   - application/wasm: yes. Wasm bytecode is not entropy-coded and
 *     typically shrinks by 60-75 % under gzip; browsers compile it while
 *     streaming either way. (Should a module be dense after all, the 10 %
 *     rule of hp_encoding_compress sends it as identity at the cost of one
 *     try.)
 * Everything else (image/png, image/jpeg, video/..., application/zip,
 * application/octet-stream, font/woff2 ...) and NULL: false. */
bool hp_encoding_type_ok(const char *ctype);

/* Compresses in[0..len) (borrowed; may be NULL when len is 0) into
 * out[0..cap) (borrowed, OUT) as one complete gzip member (RFC 1952,
 * HP_ENC_GZIP, zlib level `level`) or one brotli stream (RFC 7932,
 * HP_ENC_BR, quality `level`, window 2^10..2^22 sized to the input).
 *
 * Returns the compressed length n (1 <= n <= hp_encoding_bound), or
 *   0        when the result would not save at least 10 %, that is when it
 *            would be longer than len - ceil(len / 10) bytes (exactly that
 *            many is accepted). The caller then sends the body as identity.
 *            The compressor stops as soon as it passes that size, so
 *            incompressible input costs one pass, not a second buffer.
 *   -ENOSPC  when the result would save 10 % or more but does not fit in
 *            cap (never when cap >= hp_encoding_bound(encoding, len)).
 *   -ENOMEM  when zlib or brotli could not allocate (nothing is leaked).
 *   -EINVAL  for an encoding other than HP_ENC_GZIP or HP_ENC_BR, a level
 *            outside 1..9, or NULL in/out with a non-zero len/cap.
 * out's contents are unspecified unless n > 0. Thread-safe: no shared
 * state. */
ssize_t hp_encoding_compress(unsigned encoding, int level, const void *in, size_t len,
                             void *out, size_t cap);

/* Size of an `out` that is always large enough for hp_encoding_compress
 * of len bytes with `encoding`: len - ceil(len / 10), because a longer
 * result is never returned (it would not save 10 %). 0 for an encoding
 * hp_encoding_compress does not support. */
size_t hp_encoding_bound(unsigned encoding, size_t len);

#endif
