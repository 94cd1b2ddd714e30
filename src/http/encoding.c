/*
 * encoding.c - on-the-fly gzip and brotli Content-Encoding of a response
 * body: which media types are worth it, and one-shot compression of a
 * whole body that is kept only when it saves 10 %.
 *
 * Central data structure: per call, one hp_compress_t (src/codec) run to
 * the end of the stream over the caller's buffers and freed before
 * returning.
 * Invariant: the compressor is never given more output room than
 * min(cap, len - ceil(len / 10)), so running out of room means "would not
 * save 10 %" (limit reached) or "buffer too small" (cap reached).
 */
#include "encoding_int.h"

#include "hotpath/compress.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* ---- content types ---------------------------------------------------- */

/* Exact media types (lowercase) worth compressing besides text/..., the
 * +json/+xml suffixes and application/wasm (see the header for why). */
static const char *const ok_types[] = {
    "application/json",
    "application/javascript",
    "application/ecmascript",
    "application/x-javascript",
    "application/xml",
    "application/wasm",
    "application/vnd.ms-fontobject",
    "image/svg+xml",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "image/bmp",
    "font/ttf",
    "font/otf",
    "font/collection",
};

static bool has_prefix_ci(const char *s, size_t n, const char *p)
{
    size_t pn = strlen(p);
    return n >= pn && strncasecmp(s, p, pn) == 0;
}

static bool has_suffix_ci(const char *s, size_t n, const char *x)
{
    size_t xn = strlen(x);
    return n >= xn && strncasecmp(s + n - xn, x, xn) == 0;
}

bool hp_encoding_type_ok(const char *ctype)
{
    if (!ctype)
        return false;
    /* Isolate the type/subtype: skip leading blanks, stop at ';' (the
     * parameters) and drop trailing blanks. */
    while (*ctype == ' ' || *ctype == '\t')
        ctype++;
    size_t n = strcspn(ctype, ";");
    while (n > 0 && (ctype[n - 1] == ' ' || ctype[n - 1] == '\t'))
        n--;
    const char *slash = memchr(ctype, '/', n);
    if (!slash || slash == ctype || slash + 1 == ctype + n)
        return false;

    if (has_prefix_ci(ctype, n, "text/"))
        return !(n == strlen("text/event-stream") && has_prefix_ci(ctype, n, "text/event-stream"));
    for (size_t i = 0; i < sizeof(ok_types) / sizeof(ok_types[0]); i++)
        if (n == strlen(ok_types[i]) && strncasecmp(ctype, ok_types[i], n) == 0)
            return true;
    /* Structured-syntax suffixes (RFC 6839): the body is JSON or XML text
     * whatever the vendor prefix says. */
    if (has_prefix_ci(ctype, n, "application/"))
        return has_suffix_ci(ctype, n, "+json") || has_suffix_ci(ctype, n, "+xml");
    return false;
}

/* ---- sizes ------------------------------------------------------------ */

/* The longest result that still saves 10 %: len - ceil(len / 10), written
 * so that it cannot overflow for any size_t. */
static size_t saving_limit(size_t len)
{
    return len - (len / 10 + (len % 10 != 0));
}

size_t hp_encoding_bound(unsigned encoding, size_t len)
{
    if (encoding != HP_ENC_GZIP && encoding != HP_ENC_BR)
        return 0;
    return saving_limit(len);
}

/* Smallest brotli window (log2) that covers the whole input, within
 * 10..22: a 2 KiB body does not need the 4 MiB ring buffer of the default
 * window, and the encoder's memory scales with it. 22 is the default and
 * the most any decoder is asked for without the large-window extension. */
static int br_window(size_t len)
{
    int w = 10;
    while (w < 22 && ((size_t)1 << w) < len)
        w++;
    return w;
}

/* ---- entry point ------------------------------------------------------ */

ssize_t hp_encoding_compress(unsigned encoding, int level, const void *in, size_t len, void *out,
                             size_t cap)
{
    if ((encoding != HP_ENC_GZIP && encoding != HP_ENC_BR) || level < HP_ENCODING_LEVEL_MIN ||
        level > HP_ENCODING_LEVEL_MAX || (!in && len > 0) || (!out && cap > 0))
        return -EINVAL;
    if (len > (size_t)SSIZE_MAX)
        return -EINVAL;

    /* Give the compressor no more room than the 10 % rule allows, so that
     * an incompressible body is abandoned as soon as it passes the limit.
     * Any stream takes at least one byte, so no room settles it at once. */
    size_t limit = saving_limit(len);
    size_t room = cap < limit ? cap : limit;
    if (room == 0)
        return room == limit ? 0 : -ENOSPC;

    /* gzip: windowBits 15 and memLevel 8 (zlib's defaults; memLevel 9 buys
     * nothing measurable on web text and costs 128 KiB more). */
    hp_compress_opts_t o = {
        .algo = encoding == HP_ENC_GZIP ? HP_COMPRESS_GZIP : HP_COMPRESS_BROTLI,
        .level = level,
        .window_bits = encoding == HP_ENC_GZIP ? 15 : br_window(len),
        .mem_level = 8,
        .size_hint = len,
    };
    hp_compress_t *c;
    int rc = hp_compress_new(&c, &o);
    if (rc < 0)
        return rc;
    /* The whole body in one finish: the same bytes as one deflate(Z_FINISH)
     * or one brotli FINISH over it, written straight into out. */
    hp_compress_io_t io = {.next_in = in, .avail_in = len, .next_out = out, .avail_out = room};
    rc = hp_compress_finish(c, &io);
    hp_compress_free(c);
    if (rc == HP_COMPRESS_FULL)
        /* Out of room: if the room was the 10 % limit the body is not
         * worth compressing; if it was the caller's cap, say so. */
        return room == limit ? 0 : -ENOSPC;
    if (rc < 0)
        return rc;
    return (ssize_t)(room - io.avail_out);
}
