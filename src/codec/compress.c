/*
 * compress.c - streaming gzip, zlib, raw deflate and brotli compression
 * behind one cursor-driven interface.
 *
 * Central data structure: struct hp_compress, which holds either a zlib
 * z_stream or a BrotliEncoderState whose heap blocks are chained on an
 * intrusive list, plus the stream's state (open, finished, broken).
 * Invariants: the library is never handed more room than the caller's
 * io->avail_out, so it never writes past it; io is advanced by exactly
 * what the library consumed and produced; and a brotli encoder abandoned by
 * an allocation failure has released every block when the call returns.
 */
#include "hotpath/compress.h"

#include "hotpath/alloc.h"
#include "codec_int.h"

#include <assert.h>
#include <brotli/encode.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

/* libbrotlienc as Debian builds it (1.0.9, without
 * BROTLI_ENCODER_CLEANUP_ON_OOM) calls exit() when its allocator returns
 * NULL after the instance exists: one failed allocation in one worker would
 * end the whole server. So our alloc_func never returns NULL. On failure it
 * longjmps back to the call that entered the encoder (br_call, br_create),
 * the way libpng and libjpeg report errors, abandoning the half-updated
 * encoder; every block it had is on an intrusive list (a header in front of
 * each allocation, so tracking costs no allocation of its own), and
 * br_abandon frees the list. Brotli is plain C that holds no locks or other
 * resources across an allocation, so nothing but that memory is left
 * behind by the jump. */
struct br_block {
    _Alignas(max_align_t) struct br_block *prev; /* keeps b + 1 aligned */
    struct br_block *next;
};

enum { C_OPEN, C_FINISHED, C_BROKEN };

/* Steps of a deflate sync flush (z_flush). */
enum { F_BLOCK, F_MARK, F_DRAIN };

struct hp_compress {
    hp_compress_opts_t o; /* defaults filled in */
    int state;            /* C_* */
    int flush_step;       /* F_*: where a deflate flush left off */
    union {
        z_stream z;
        struct {
            BrotliEncoderState *s; /* NULL after a reset, until the next call */
            struct br_block *live; /* every block s holds */
            jmp_buf oom;
        } br;
    };
};

/* ---- zlib ------------------------------------------------------------- */

/* zlib counts in uInt, so buffers larger than 4 GiB go in slices. */
static uInt z_slice(size_t n)
{
    return n > UINT_MAX ? UINT_MAX : (uInt)n;
}

static int z_init(hp_compress_t *c)
{
    /* zlib selects the wrapper by the sign and range of windowBits. 8 is
     * run as 9 (see the header for why that is still a 256-byte stream);
     * zlib itself does that for the zlib wrapper only and refuses 8
     * otherwise. */
    int wb = c->o.window_bits == 8 ? 9 : c->o.window_bits;
    if (c->o.algo == HP_COMPRESS_GZIP)
        wb += 16;
    else if (c->o.algo == HP_COMPRESS_DEFLATE)
        wb = -wb;
    c->z.zalloc = codec_zalloc;
    c->z.zfree = codec_zfree;
    int r = deflateInit2(&c->z, c->o.level, Z_DEFLATED, wb, c->o.mem_level, Z_DEFAULT_STRATEGY);
    if (r == Z_MEM_ERROR)
        return -ENOMEM;
    return r == Z_OK ? 0 : -EINVAL;
}

/* One deflate operation over io, in slices of at most 4 GiB: Z_NO_FLUSH
 * (feed), Z_BLOCK (the first step of a flush) or Z_FINISH. The flush is
 * asked for only with the last slice of input, as zlib wants no input
 * added after it. */
static int z_run(hp_compress_t *c, hp_compress_io_t *io, int flush)
{
    z_stream *zs = &c->z;
    for (;;) {
        /* deflate() makes no progress without room (it would not even
         * take input into its window), and refuses a NULL next_out. */
        if (io->avail_out == 0)
            return HP_COMPRESS_FULL;
        uInt in_n = z_slice(io->avail_in), out_n = z_slice(io->avail_out);
        int f = in_n < io->avail_in ? Z_NO_FLUSH : flush;
        zs->next_in = (z_const Bytef *)io->next_in;
        zs->avail_in = in_n;
        zs->next_out = io->next_out;
        zs->avail_out = out_n;
        int r = deflate(zs, f);
        size_t used = in_n - zs->avail_in, made = out_n - zs->avail_out;
        codec_advance(io, used, made);

        /* Z_BUF_ERROR only says that no progress was possible (no room,
         * or a flush repeated with nothing new): not an error here. */
        if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR)
            return -EINVAL; /* Z_STREAM_ERROR: cannot happen with our state */
        if (r == Z_STREAM_END) {
            c->state = C_FINISHED;
            return 0;
        }
        if (f == flush) {
            /* The last slice went in. A feed is done when it is consumed;
             * zlib's contract for a flush is that it is complete when the
             * call returns with room left. */
            if (flush == Z_NO_FLUSH && io->avail_in == 0)
                return 0;
            if (flush == Z_BLOCK && zs->avail_out != 0)
                return 0;
        }
        /* With room left zlib consumed its whole slice (it stops early
         * only when the output is full), so the loop goes on to the next;
         * with none, the top of the loop returns. */
        if (io->avail_out != 0 && used == 0 && made == 0)
            return -EINVAL; /* no progress: would spin */
    }
}

/* One deflate() call without input, for the end of a flush. */
static void z_call(hp_compress_t *c, hp_compress_io_t *io, int flush)
{
    z_stream *zs = &c->z;
    uInt out_n = z_slice(io->avail_out);
    zs->next_in = NULL;
    zs->avail_in = 0;
    zs->next_out = io->next_out;
    zs->avail_out = out_n;
    deflate(zs, flush); /* Z_OK, or Z_BUF_ERROR for nothing to do */
    io->next_out += out_n - zs->avail_out;
    io->avail_out -= out_n - zs->avail_out;
}

/* A sync flush that writes its empty stored block exactly once, whatever
 * the room. A plain Z_SYNC_FLUSH repeated until it returns with room left
 * (zlib's own contract) writes a fresh marker each time the previous one
 * ended exactly at the end of the room, so with rooms under 6 bytes it
 * never ends. Instead: Z_BLOCK ends the current block (repeating it adds
 * nothing); one Z_SYNC_FLUSH then queues the marker; its bytes are
 * drained with more Z_BLOCK calls until deflatePending reports none. The
 * bits are the same as one Z_SYNC_FLUSH's, and every flush ends with
 * 00 00 ff ff, even one with nothing new to flush (which permessage-
 * deflate needs for an empty message). */
static int z_flush(hp_compress_t *c, hp_compress_io_t *io)
{
    if (c->flush_step == F_BLOCK) {
        int rc = z_run(c, io, Z_BLOCK);
        if (rc != 0)
            return rc;
        c->flush_step = F_MARK;
    }
    if (c->flush_step == F_MARK) {
        if (io->avail_out == 0)
            return HP_COMPRESS_FULL;
        z_call(c, io, Z_SYNC_FLUSH);
        c->flush_step = F_DRAIN;
    }
    for (;;) {
        unsigned pending;
        int bits;
        deflatePending(&c->z, &pending, &bits);
        if (pending == 0) {
            c->flush_step = F_BLOCK;
            return 0;
        }
        if (io->avail_out == 0)
            return HP_COMPRESS_FULL;
        z_call(c, io, Z_BLOCK);
    }
}

/* ---- brotli ----------------------------------------------------------- */

static void *br_alloc(void *opaque, size_t size)
{
    hp_compress_t *c = opaque;
    struct br_block *b = NULL;
    if (size <= SIZE_MAX - sizeof(*b))
        b = hp_malloc(sizeof(*b) + size);
    if (!b)
        longjmp(c->br.oom, 1);
    b->prev = NULL;
    b->next = c->br.live;
    if (c->br.live)
        c->br.live->prev = b;
    c->br.live = b;
    return b + 1;
}

static void br_free(void *opaque, void *p)
{
    hp_compress_t *c = opaque;
    if (!p)
        return;
    struct br_block *b = (struct br_block *)p - 1;
    if (b->prev)
        b->prev->next = b->next;
    else
        c->br.live = b->next;
    if (b->next)
        b->next->prev = b->prev;
    hp_free(b);
}

/* Drops an encoder left half-way by a longjmp: its blocks, not its API. */
static void br_abandon(hp_compress_t *c)
{
    while (c->br.live) {
        struct br_block *b = c->br.live;
        c->br.live = b->next;
        hp_free(b);
    }
    c->br.s = NULL;
    c->state = C_BROKEN;
}

/* The encoder with the context's parameters, in c->br.s. Returns 0,
 * -EINVAL, or -ENOMEM by way of longjmp (the caller abandons). */
static int br_create_guarded(hp_compress_t *c)
{
    if (setjmp(c->br.oom))
        return -ENOMEM;
    c->br.s = BrotliEncoderCreateInstance(br_alloc, br_free, c);
    if (!c->br.s)
        return -ENOMEM;
    /* The size hint is capped at 1 GiB because brotli reads it as a
     * 32-bit value; it only tunes heuristics. */
    uint64_t hint = c->o.size_hint < (1u << 30) ? c->o.size_hint : (1u << 30);
    if (!BrotliEncoderSetParameter(c->br.s, BROTLI_PARAM_QUALITY, (uint32_t)c->o.level) ||
        !BrotliEncoderSetParameter(c->br.s, BROTLI_PARAM_LGWIN, (uint32_t)c->o.window_bits) ||
        !BrotliEncoderSetParameter(c->br.s, BROTLI_PARAM_SIZE_HINT, (uint32_t)hint)) {
        BrotliEncoderDestroyInstance(c->br.s);
        c->br.s = NULL;
        return -EINVAL;
    }
    return 0;
}

static int br_create(hp_compress_t *c)
{
    int rc = br_create_guarded(c);
    if (rc == -ENOMEM)
        br_abandon(c);
    assert(rc == 0 || c->br.live == NULL);
    return rc;
}

/* One brotli operation over io. Kept apart from br_run so that nothing
 * br_run reads after a longjmp is a local changed since the setjmp (such
 * locals are indeterminate, C17 7.13.2.1). Returns as z_run, with -ENOMEM
 * by way of longjmp. */
static int br_guarded(hp_compress_t *c, hp_compress_io_t *io, BrotliEncoderOperation op)
{
    if (setjmp(c->br.oom))
        return -ENOMEM;
    BrotliEncoderState *s = c->br.s;
    for (;;) {
        size_t in_before = io->avail_in, out_before = io->avail_out;
        if (!BrotliEncoderCompressStream(s, op, &io->avail_in, &io->next_in, &io->avail_out,
                                         &io->next_out, NULL))
            return -EINVAL; /* an operation changed before the last one ended */
        switch (op) {
        case BROTLI_OPERATION_PROCESS:
            if (io->avail_in == 0)
                return 0;
            break;
        case BROTLI_OPERATION_FLUSH:
            /* Brotli's definition of a completed flush. */
            if (io->avail_in == 0 && !BrotliEncoderHasMoreOutput(s))
                return 0;
            break;
        default:
            if (BrotliEncoderIsFinished(s)) {
                c->state = C_FINISHED;
                return 0;
            }
            break;
        }
        if (io->avail_out == 0)
            return HP_COMPRESS_FULL;
        /* Guard against a loop without progress, which the encoder's
         * contract rules out but which would hang a worker. */
        if (io->avail_in == in_before && io->avail_out == out_before)
            return -EINVAL;
    }
}

static int br_run(hp_compress_t *c, hp_compress_io_t *io, BrotliEncoderOperation op)
{
    if (!c->br.s) {
        int rc = br_create(c);
        if (rc < 0)
            return rc;
    }
    int rc = br_guarded(c, io, op);
    if (rc == -ENOMEM)
        br_abandon(c);
    return rc;
}

/* ---- interface -------------------------------------------------------- */

int hp_compress_new(hp_compress_t **out, const hp_compress_opts_t *opts)
{
    hp_compress_opts_t o = *opts;
    if (codec_is_deflate(o.algo)) {
        if (o.window_bits == 0)
            o.window_bits = 15;
        if (o.mem_level == 0)
            o.mem_level = 8;
        if (o.level < 0 || o.level > 9 || o.window_bits < 8 || o.window_bits > 15 ||
            o.mem_level < 1 || o.mem_level > 9)
            return -EINVAL;
    } else if (o.algo == HP_COMPRESS_BROTLI) {
        if (o.window_bits == 0)
            o.window_bits = BROTLI_DEFAULT_WINDOW;
        if (o.level < BROTLI_MIN_QUALITY || o.level > BROTLI_MAX_QUALITY ||
            o.window_bits < BROTLI_MIN_WINDOW_BITS || o.window_bits > BROTLI_MAX_WINDOW_BITS)
            return -EINVAL;
    } else {
        return -EINVAL;
    }

    hp_compress_t *c = hp_calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->o = o;
    c->state = C_OPEN;
    int rc = codec_is_deflate(o.algo) ? z_init(c) : br_create(c);
    if (rc < 0) {
        /* deflateInit2 frees what it took when it fails. */
        hp_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* The three operations differ in the flush they ask of the library. */
static int run(hp_compress_t *c, hp_compress_io_t *io, int zflush, BrotliEncoderOperation op)
{
    if (c->state != C_OPEN)
        return -EINVAL;
    if (!codec_is_deflate(c->o.algo))
        return br_run(c, io, op);
    return zflush == Z_SYNC_FLUSH ? z_flush(c, io) : z_run(c, io, zflush);
}

int hp_compress_feed(hp_compress_t *c, hp_compress_io_t *io)
{
    /* Nothing to do, and zlib would call a feed without input an error. */
    if (c->state == C_OPEN && io->avail_in == 0)
        return 0;
    return run(c, io, Z_NO_FLUSH, BROTLI_OPERATION_PROCESS);
}

int hp_compress_flush(hp_compress_t *c, hp_compress_io_t *io)
{
    return run(c, io, Z_SYNC_FLUSH, BROTLI_OPERATION_FLUSH);
}

int hp_compress_finish(hp_compress_t *c, hp_compress_io_t *io)
{
    return run(c, io, Z_FINISH, BROTLI_OPERATION_FINISH);
}

int hp_compress_reset(hp_compress_t *c)
{
    c->state = C_OPEN;
    c->flush_step = F_BLOCK;
    if (codec_is_deflate(c->o.algo))
        return deflateReset(&c->z) == Z_OK ? 0 : -EINVAL;
    if (c->br.s) {
        BrotliEncoderDestroyInstance(c->br.s);
        c->br.s = NULL;
    }
    assert(c->br.live == NULL);
    return 0;
}

void hp_compress_free(hp_compress_t *c)
{
    if (!c)
        return;
    if (codec_is_deflate(c->o.algo))
        deflateEnd(&c->z);
    else if (c->br.s)
        BrotliEncoderDestroyInstance(c->br.s);
    assert(codec_is_deflate(c->o.algo) || c->br.live == NULL);
    hp_free(c);
}
