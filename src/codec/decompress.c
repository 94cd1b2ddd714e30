/*
 * decompress.c - streaming gzip, zlib, raw deflate and brotli
 * decompression with a limit on the output.
 *
 * Central data structure: struct hp_decompress, a zlib z_stream or a
 * BrotliDecoderState, with the count of bytes produced and the stream's
 * state (open, ended, or the error it stopped on).
 * Invariant: the decoder is never given room for more than
 * max_out - total + 1 bytes (nor more than the caller's room), so a stream
 * that passes the limit is caught having written at most one byte too
 * many, whatever its ratio.
 */
#include "hotpath/decompress.h"

#include "hotpath/alloc.h"
#include "codec_int.h"

#include <brotli/decode.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

struct hp_decompress {
    hp_decompress_opts_t o; /* defaults filled in */
    uint64_t total;         /* bytes produced since the limit (re)started */
    int state;              /* 0 open, HP_DECOMPRESS_END, or the -errno it stopped on */
    union {
        z_stream z;
        BrotliDecoderState *br; /* NULL after a failed rebuild */
    };
};

static void *br_alloc(void *opaque, size_t size)
{
    (void)opaque;
    return hp_malloc(size);
}

static void br_free(void *opaque, void *p)
{
    (void)opaque;
    hp_free(p);
}

/* Room to give the decoder: the caller's, cut to one byte past the limit
 * (so that passing it shows) and to zlib's 32-bit counts. */
static size_t room_for(const hp_decompress_t *d, size_t avail_out, size_t cap)
{
    uint64_t left = d->o.max_out - d->total;
    size_t room = avail_out;
    if (left < room)
        room = (size_t)left + 1; /* left < room, so no overflow */
    return room < cap ? room : cap;
}

/* ---- zlib ------------------------------------------------------------- */

static int z_init(hp_decompress_t *d)
{
    int wb = d->o.window_bits;
    if (d->o.algo == HP_COMPRESS_GZIP)
        wb += 16;
    else if (d->o.algo == HP_COMPRESS_DEFLATE)
        wb = -wb;
    d->z.zalloc = codec_zalloc;
    d->z.zfree = codec_zfree;
    int r = inflateInit2(&d->z, wb);
    if (r == Z_MEM_ERROR)
        return -ENOMEM;
    return r == Z_OK ? 0 : -EINVAL;
}

static int z_run(hp_decompress_t *d, hp_compress_io_t *io)
{
    z_stream *zs = &d->z;
    for (;;) {
        if (io->avail_out == 0)
            return HP_DECOMPRESS_FULL;
        uInt in_n = io->avail_in > UINT_MAX ? UINT_MAX : (uInt)io->avail_in;
        uInt out_n = (uInt)room_for(d, io->avail_out, UINT_MAX);
        zs->next_in = (z_const Bytef *)io->next_in;
        zs->avail_in = in_n;
        zs->next_out = io->next_out;
        zs->avail_out = out_n;
        int r = inflate(zs, Z_NO_FLUSH);
        size_t used = in_n - zs->avail_in, made = out_n - zs->avail_out;
        codec_advance(io, used, made);
        d->total += made;

        if (d->total > d->o.max_out)
            return -EMSGSIZE;
        switch (r) {
        case Z_STREAM_END:
            return HP_DECOMPRESS_END;
        case Z_OK:
        case Z_BUF_ERROR: /* no progress possible: input or room used up */
            break;
        case Z_MEM_ERROR:
            return -ENOMEM;
        case Z_DATA_ERROR:
        case Z_NEED_DICT: /* a zlib stream with a preset dictionary */
            return -EBADMSG;
        default:
            return -EINVAL;
        }
        if (io->avail_in == 0 && io->avail_out != 0)
            return 0;
        /* Input and room both left: a slice or the limit's cut ended the
         * call, and the top of the loop sorts out which. A call that moved
         * nothing with both left would spin. */
        if (used == 0 && made == 0 && io->avail_out != 0)
            return -EBADMSG;
    }
}

/* ---- brotli ----------------------------------------------------------- */

static int br_init(hp_decompress_t *d)
{
    d->br = BrotliDecoderCreateInstance(br_alloc, br_free, NULL);
    return d->br ? 0 : -ENOMEM;
}

static int br_error(BrotliDecoderErrorCode e)
{
    switch (e) {
    case BROTLI_DECODER_ERROR_ALLOC_CONTEXT_MODES:
    case BROTLI_DECODER_ERROR_ALLOC_TREE_GROUPS:
    case BROTLI_DECODER_ERROR_ALLOC_CONTEXT_MAP:
    case BROTLI_DECODER_ERROR_ALLOC_RING_BUFFER_1:
    case BROTLI_DECODER_ERROR_ALLOC_RING_BUFFER_2:
    case BROTLI_DECODER_ERROR_ALLOC_BLOCK_TYPE_TREES:
        return -ENOMEM;
    default:
        return -EBADMSG;
    }
}

static int br_run(hp_decompress_t *d, hp_compress_io_t *io)
{
    if (!d->br && br_init(d) < 0)
        return -ENOMEM;
    for (;;) {
        size_t room = room_for(d, io->avail_out, SIZE_MAX), left = room;
        size_t in_before = io->avail_in;
        BrotliDecoderResult r =
            BrotliDecoderDecompressStream(d->br, &io->avail_in, &io->next_in, &left, &io->next_out,
                                          NULL);
        size_t made = room - left;
        io->avail_out -= made;
        d->total += made;

        if (d->total > d->o.max_out)
            return -EMSGSIZE;
        switch (r) {
        case BROTLI_DECODER_RESULT_SUCCESS:
            return HP_DECOMPRESS_END;
        case BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT:
            /* The decoder says so even when the room ran out before all it
             * has decoded was written (it keeps the rest in its ring
             * buffer): 0 must mean that everything is out. */
            if (!BrotliDecoderHasMoreOutput(d->br))
                return 0;
            /* fall through */
        case BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT:
            if (io->avail_out == 0)
                return HP_DECOMPRESS_FULL;
            /* Room is left, so the limit's cut stopped it: the next round
             * gives the one byte that tells. */
            if (made == 0 && io->avail_in == in_before)
                return -EBADMSG; /* would spin */
            break;
        default:
            return br_error(BrotliDecoderGetErrorCode(d->br));
        }
    }
}

/* ---- interface -------------------------------------------------------- */

int hp_decompress_new(hp_decompress_t **out, const hp_decompress_opts_t *opts)
{
    hp_decompress_opts_t o = *opts;
    if (o.max_out == 0)
        return -EINVAL;
    if (codec_is_deflate(o.algo)) {
        /* 0 asks zlib to read the window from a zlib header; the other
         * formats have none to read it from. */
        if (o.window_bits == 0 && o.algo != HP_COMPRESS_ZLIB)
            o.window_bits = 15;
        if (o.window_bits != 0 && (o.window_bits < 8 || o.window_bits > 15))
            return -EINVAL;
    } else if (o.algo != HP_COMPRESS_BROTLI || o.window_bits != 0) {
        return -EINVAL;
    }

    hp_decompress_t *d = hp_calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->o = o;
    int rc = codec_is_deflate(o.algo) ? z_init(d) : br_init(d);
    if (rc < 0) {
        hp_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

int hp_decompress_feed(hp_decompress_t *d, hp_compress_io_t *io)
{
    if (d->state != 0)
        return d->state;
    int rc = codec_is_deflate(d->o.algo) ? z_run(d, io) : br_run(d, io);
    if (rc < 0 || rc == HP_DECOMPRESS_END)
        d->state = rc;
    return rc;
}

uint64_t hp_decompress_total(const hp_decompress_t *d)
{
    return d->total;
}

void hp_decompress_restart_limit(hp_decompress_t *d)
{
    d->total = 0;
}

int hp_decompress_reset(hp_decompress_t *d)
{
    d->total = 0;
    d->state = 0;
    if (codec_is_deflate(d->o.algo))
        return inflateReset(&d->z) == Z_OK ? 0 : -EINVAL;
    if (d->br)
        BrotliDecoderDestroyInstance(d->br);
    return br_init(d);
}

void hp_decompress_free(hp_decompress_t *d)
{
    if (!d)
        return;
    if (codec_is_deflate(d->o.algo))
        inflateEnd(&d->z);
    else if (d->br)
        BrotliDecoderDestroyInstance(d->br);
    hp_free(d);
}
