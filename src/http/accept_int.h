/*
 * accept_int.h - content-coding negotiation from Accept-Encoding
 * (RFC 9110 §12.5.3) for serving precompressed static files.
 *
 * A pure function over a (pointer, length) value: no allocation, no NUL
 * needed, no state.
 */
#ifndef HOTPATH_ACCEPT_INT_H
#define HOTPATH_ACCEPT_INT_H

#include <stddef.h>

#include "hotpath/common.h"

/* Codings the static server can send: the file itself, or a precompressed
 * sibling (.gz, .br). */
enum { HP_ENC_IDENTITY = 1u << 0, HP_ENC_GZIP = 1u << 1, HP_ENC_BR = 1u << 2 };

/* Picks the coding to send among `available` (a mask of HP_ENC_*; other
 * bits are ignored, and HP_ENC_IDENTITY is always added: the file itself
 * always exists) from the Accept-Encoding value v[0..len).
 *
 *   - v NULL (no header): identity. RFC 9110 would allow any coding, but a
 *     client that sends no Accept-Encoding is in practice one that cannot
 *     decode (nginx's gzip_static behaves the same).
 *   - An empty value, or one that lists nothing we know: identity.
 *   - Each element is a coding with an optional weight ";q=" qvalue, where
 *     qvalue is "0" ["." up to 3 digits] or "1" ["." up to 3 zeros]. "q" and
 *     codings are case-insensitive; "x-gzip" means gzip. The highest q wins;
 *     ties go to br, then gzip, then identity; q=0 excludes the coding.
 *   - "*" gives its q to every coding not listed by name, identity
 *     included.
 *   - identity not listed and no "*": acceptable, but with the lowest
 *     preference, below any coding the client listed with q > 0.
 *   - A malformed element (a bad or repeated q, another parameter, a
 *     missing token, stray bytes) is ignored as a whole and parsing goes on
 *     at the next comma outside a quoted string: it neither enables nor
 *     forbids anything. A coding listed twice keeps its highest q.
 *
 * Returns one HP_ENC_* bit from available | HP_ENC_IDENTITY, or 0 when the
 * client accepts none of them, which can only happen when identity is
 * forbidden ("identity;q=0", or "*;q=0" without identity listed). On 0 the
 * caller answers 406 Not Acceptable (or, as §12.5.3 also allows, ignores
 * the header and sends identity); never 406 while identity is acceptable. */
unsigned hp_accept_encoding(const char *v, size_t len, unsigned available);

#endif
