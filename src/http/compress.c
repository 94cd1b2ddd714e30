/*
 * compress.c - one-shot gzip and brotli compression of a response body.
 *
 * Central data structure: per call, one zlib z_stream on the stack or one
 * BrotliEncoderState whose heap blocks are chained on an intrusive list
 * (struct br_ctx), run to the end over the caller's buffers and destroyed
 * before returning.
 * Invariants: the compressor is never given more output room than
 * min(cap, len - ceil(len / 10)), so running out of room means "would not
 * save 10 %" (limit reached) or "buffer too small" (cap reached); and every
 * path out of a call, an allocation failure inside brotli included, has
 * released all the encoder's memory.
 */
#include "hotpath/compress.h"

#include "hotpath/alloc.h"

#include <assert.h>
#include <brotli/encode.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

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

bool hp_compress_type_ok(const char *ctype)
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

size_t hp_compress_bound(unsigned encoding, size_t len)
{
    if (encoding != HP_ENC_GZIP && encoding != HP_ENC_BR)
        return 0;
    return saving_limit(len);
}

/* ---- gzip ------------------------------------------------------------- */

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    /* Two 32-bit factors cannot overflow a 64-bit size_t. */
    return hp_malloc((size_t)items * size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    hp_free(p);
}

/* zlib counts in uInt, so buffers larger than 4 GiB are fed in slices. */
static uInt z_slice(size_t n)
{
    return n > UINT_MAX ? UINT_MAX : (uInt)n;
}

static ssize_t gzip_run(int level, const void *in, size_t len, void *out, size_t room)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    zs.zalloc = z_alloc;
    zs.zfree = z_free;
    /* windowBits 15 + 16 asks for the gzip wrapper (header 1f 8b, CRC-32
     * and size trailer) rather than zlib's. memLevel 8 is zlib's default:
     * 9 buys nothing measurable on web text and costs 128 KiB more. */
    int r = deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    if (r == Z_MEM_ERROR)
        return -ENOMEM;
    if (r != Z_OK)
        return -EINVAL;

    zs.next_in = (z_const Bytef *)in;
    zs.next_out = out;
    size_t in_left = len, out_left = room;
    ssize_t ret;
    for (;;) {
        if (zs.avail_in == 0 && in_left > 0) {
            zs.avail_in = z_slice(in_left);
            in_left -= zs.avail_in;
        }
        if (zs.avail_out == 0) {
            if (out_left == 0) {
                ret = -ENOSPC; /* the caller maps this to 0 or -ENOSPC */
                break;
            }
            zs.avail_out = z_slice(out_left);
            out_left -= zs.avail_out;
        }
        /* Z_FINISH only once the last slice of input is in, as zlib
         * requires that no input be added after it. */
        r = deflate(&zs, in_left > 0 ? Z_NO_FLUSH : Z_FINISH);
        if (r == Z_STREAM_END) {
            ret = (ssize_t)(room - out_left - zs.avail_out);
            break;
        }
        /* Z_BUF_ERROR only means "no progress possible": output is full
         * (handled above) or more input is due (fed above). Anything else
         * cannot happen with our arguments. */
        if (r != Z_OK && r != Z_BUF_ERROR) {
            ret = r == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
            break;
        }
        if (r == Z_BUF_ERROR && zs.avail_out > 0 && zs.avail_in == 0 && in_left == 0) {
            ret = -EINVAL;
            break;
        }
    }
    deflateEnd(&zs);
    return ret;
}

/* ---- brotli ----------------------------------------------------------- */

/* libbrotlienc as Debian builds it (1.0.9, without
 * BROTLI_ENCODER_CLEANUP_ON_OOM) calls exit() when its allocator returns
 * NULL after the instance exists: one failed allocation in one worker would
 * end the whole server. So our alloc_func never returns NULL. On failure it
 * longjmps back to br_guarded, the way libpng and libjpeg report errors,
 * abandoning the half-built encoder; every block it had is on an intrusive
 * list (a header in front of each allocation, so tracking costs no
 * allocation of its own), and br_run frees the list. Brotli is plain C that
 * holds no locks or other resources across an allocation, so nothing but
 * that memory is left behind by the jump. */
struct br_block {
    _Alignas(max_align_t) struct br_block *prev; /* keeps b + 1 aligned */
    struct br_block *next;
};

struct br_ctx {
    jmp_buf oom;
    struct br_block *live; /* every block brotli holds */
};

static void *br_alloc(void *opaque, size_t size)
{
    struct br_ctx *c = opaque;
    struct br_block *b = NULL;
    if (size <= SIZE_MAX - sizeof(*b))
        b = hp_malloc(sizeof(*b) + size);
    if (!b)
        longjmp(c->oom, 1);
    b->prev = NULL;
    b->next = c->live;
    if (c->live)
        c->live->prev = b;
    c->live = b;
    return b + 1;
}

static void br_free(void *opaque, void *p)
{
    struct br_ctx *c = opaque;
    if (!p)
        return;
    struct br_block *b = (struct br_block *)p - 1;
    if (b->prev)
        b->prev->next = b->next;
    else
        c->live = b->next;
    if (b->next)
        b->next->prev = b->prev;
    hp_free(b);
}

/* Smallest window (log2) that covers the whole input, within brotli's
 * 10..22 range: a 2 KiB body does not need the 4 MiB ring buffer of the
 * default window, and the encoder's memory scales with it. 22 is the
 * default and the most any decoder is asked for without the large-window
 * extension. */
static uint32_t br_window(size_t len)
{
    uint32_t w = BROTLI_MIN_WINDOW_BITS;
    while (w < 22 && ((size_t)1 << w) < len)
        w++;
    return w;
}

/* Runs the encoder; returns as br_run, with -ENOMEM by way of longjmp.
 * Kept apart from br_run so that `c`, which br_alloc changes between
 * setjmp and longjmp, is not a local of the function that calls setjmp
 * (whose locals would then be indeterminate, C17 7.13.2.1). */
static ssize_t br_guarded(struct br_ctx *c, int level, const void *in, size_t len, void *out,
                          size_t room)
{
    if (setjmp(c->oom))
        return -ENOMEM;
    BrotliEncoderState *s = BrotliEncoderCreateInstance(br_alloc, br_free, c);
    if (!s)
        return -ENOMEM;
    /* The size hint is capped at 1 GiB because brotli reads it as a
     * 32-bit value; it only tunes heuristics. */
    size_t hint = len < ((size_t)1 << 30) ? len : ((size_t)1 << 30);
    if (!BrotliEncoderSetParameter(s, BROTLI_PARAM_QUALITY, (uint32_t)level) ||
        !BrotliEncoderSetParameter(s, BROTLI_PARAM_LGWIN, br_window(len)) ||
        !BrotliEncoderSetParameter(s, BROTLI_PARAM_SIZE_HINT, (uint32_t)hint)) {
        BrotliEncoderDestroyInstance(s);
        return -EINVAL;
    }

    const uint8_t *next_in = in;
    uint8_t *next_out = out;
    size_t avail_in = len, avail_out = room;
    ssize_t ret;
    for (;;) {
        if (BrotliEncoderIsFinished(s)) {
            ret = (ssize_t)(room - avail_out);
            break;
        }
        if (avail_out == 0) {
            ret = -ENOSPC; /* the caller maps this to 0 or -ENOSPC */
            break;
        }
        size_t before_in = avail_in, before_out = avail_out;
        /* With valid parameters and all input given at once this cannot
         * fail (allocation failures leave through br_alloc's longjmp). */
        if (!BrotliEncoderCompressStream(s, BROTLI_OPERATION_FINISH, &avail_in, &next_in,
                                         &avail_out, &next_out, NULL)) {
            ret = -EINVAL;
            break;
        }
        /* Guard against a loop without progress, which the encoder's
         * contract rules out but which would hang a worker. */
        if (avail_in == before_in && avail_out == before_out && !BrotliEncoderIsFinished(s)) {
            ret = -EINVAL;
            break;
        }
    }
    BrotliEncoderDestroyInstance(s);
    return ret;
}

static ssize_t br_run(int level, const void *in, size_t len, void *out, size_t room)
{
    struct br_ctx c = {.live = NULL};
    ssize_t ret = br_guarded(&c, level, in, len, out, room);
    /* Empty unless the encoder was abandoned by an allocation failure. */
    assert(ret == -ENOMEM || c.live == NULL);
    while (c.live) {
        struct br_block *b = c.live;
        c.live = b->next;
        hp_free(b);
    }
    return ret;
}

/* ---- entry point ------------------------------------------------------ */

ssize_t hp_compress(unsigned encoding, int level, const void *in, size_t len, void *out,
                    size_t cap)
{
    if ((encoding != HP_ENC_GZIP && encoding != HP_ENC_BR) || level < HP_COMPRESS_LEVEL_MIN ||
        level > HP_COMPRESS_LEVEL_MAX || (!in && len > 0) || (!out && cap > 0))
        return -EINVAL;
    if (len > (size_t)SSIZE_MAX)
        return -EINVAL;

    /* Give the encoder no more room than the 10 % rule allows, so that an
     * incompressible body is abandoned as soon as it passes the limit. */
    size_t limit = saving_limit(len);
    size_t room = cap < limit ? cap : limit;
    ssize_t n = encoding == HP_ENC_GZIP ? gzip_run(level, in, len, out, room)
                                        : br_run(level, in, len, out, room);
    if (n == -ENOSPC)
        /* Out of room: if the room was the 10 % limit the body is not
         * worth compressing; if it was the caller's cap, say so. */
        return room == limit ? 0 : -ENOSPC;
    return n;
}
