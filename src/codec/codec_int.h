/*
 * codec_int.h - what compress.c and decompress.c share: the format test,
 * the cursor's advance and zlib's allocation hooks, which route its memory through hp_malloc
 * (so out-of-memory can be injected and counted like any other). Private
 * to src/codec.
 */
#ifndef HOTPATH_CODEC_INT_H
#define HOTPATH_CODEC_INT_H

#include <stdbool.h>
#include <zlib.h>

#include "hotpath/alloc.h"
#include "hotpath/compress.h"

static inline bool codec_is_deflate(hp_compress_algo_t a)
{
    return a == HP_COMPRESS_GZIP || a == HP_COMPRESS_ZLIB || a == HP_COMPRESS_DEFLATE;
}

static inline voidpf codec_zalloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    /* Two 32-bit factors cannot overflow a 64-bit size_t. */
    return hp_malloc((size_t)items * size);
}

static inline void codec_zfree(voidpf opaque, voidpf p)
{
    (void)opaque;
    hp_free(p);
}

/* Moves the caller's cursor past what one call consumed and produced. The
 * guards matter: an empty buffer may be NULL, and NULL + 0 is undefined. */
static inline void codec_advance(hp_compress_io_t *io, size_t used, size_t made)
{
    if (used) {
        io->next_in += used;
        io->avail_in -= used;
    }
    if (made) {
        io->next_out += made;
        io->avail_out -= made;
    }
}

#endif
