/*
 * codec_harness.h - what the codec unit tests share (test_compress.c,
 * test_decompress.c): an allocator that knows what is still allocated,
 * deterministic text and noise, and reference decoders that do not go
 * through the code under test.
 *
 * The allocator: the test binary defines every function of
 * include/hotpath/alloc.h itself, so the linker takes these instead of
 * src/core/alloc.o from libhotpath.a. They keep core's contract (counted
 * allocations, the Nth one failing, sticky or not) and add one figure,
 * live_blocks(), the blocks handed out and not yet freed, so an
 * out-of-memory sweep can assert that nothing leaks in any build, not only
 * under LeakSanitizer. Single-threaded, like the tests.
 *
 * Include it after <cmocka.h>. Helpers a test does not call are marked
 * unused.
 */
#ifndef HP_TEST_CODEC_HARNESS_H
#define HP_TEST_CODEC_HARNESS_H

#include <brotli/decode.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "hotpath/alloc.h"
#include "hotpath/compress.h"

#define CH_UNUSED __attribute__((unused))

/* ---- allocator --------------------------------------------------------- */

static uint64_t ch_allocs, ch_frees, ch_countdown;
static int ch_sticky;

static int ch_should_fail(void)
{
    if (ch_countdown == 0)
        return 0;
    if (ch_countdown == 1) {
        if (!ch_sticky)
            ch_countdown = 0;
        return 1;
    }
    ch_countdown--;
    return 0;
}

void *hp_malloc(size_t size)
{
    if (ch_should_fail())
        return NULL;
    void *p = malloc(size ? size : 1);
    ch_allocs += p != NULL;
    return p;
}

void *hp_calloc(size_t n, size_t size)
{
    if (ch_should_fail())
        return NULL;
    void *p = calloc(n ? n : 1, size ? size : 1);
    ch_allocs += p != NULL;
    return p;
}

void *hp_realloc(void *ptr, size_t size)
{
    if (ch_should_fail())
        return NULL;
    void *p = realloc(ptr, size ? size : 1);
    ch_allocs += p != NULL && ptr == NULL;
    return p;
}

void *hp_calloc_aligned(size_t size)
{
    if (ch_should_fail())
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, size ? size : 1) != 0)
        return NULL;
    memset(p, 0, size);
    ch_allocs++;
    return p;
}

void hp_free(void *ptr)
{
    ch_frees += ptr != NULL;
    free(ptr);
}

uint64_t hp_alloc_count(void)
{
    return ch_allocs;
}

void hp_alloc_fail_after(uint64_t n, int sticky)
{
    ch_sticky = sticky;
    ch_countdown = n;
}

static CH_UNUSED uint64_t live_blocks(void)
{
    return ch_allocs - ch_frees;
}

/* ---- inputs ------------------------------------------------------------ */

/* Deterministic generator so that failures reproduce. */
static uint64_t ch_rng_state = 0x9e3779b97f4a7c15ull;

static CH_UNUSED uint64_t rng(void)
{
    uint64_t x = ch_rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return ch_rng_state = x;
}

static CH_UNUSED void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rng() >> 32);
}

/* Text that compresses the way pages and JSON messages do (words, numbers
 * and markup drawn at random), not like one repeated string. */
static CH_UNUSED void fill_text(uint8_t *p, size_t n)
{
    static const char *const words[] = {
        "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "hotpath",
        "server", "lorem", "ipsum", "dolor", "<li>", "</li>", "{\"id\":", "\"name\":",
        "price", "deflate", "window", "message",
    };
    size_t nw = sizeof(words) / sizeof(words[0]), i = 0;
    while (i < n) {
        char w[32];
        int k = rng() % 5 ? snprintf(w, sizeof(w), "%s ", words[rng() % nw])
                          : snprintf(w, sizeof(w), "%u, ", (unsigned)(rng() % 100000));
        size_t wl = (size_t)k < n - i ? (size_t)k : n - i;
        memcpy(p + i, w, wl);
        i += wl;
    }
}

/* ---- reference decoders ------------------------------------------------ */

/* zlib's windowBits for a format and window (0: from a zlib header). */
static CH_UNUSED int ref_wbits(hp_compress_algo_t algo, int window_bits)
{
    switch (algo) {
    case HP_COMPRESS_GZIP:
        return 16 + (window_bits ? window_bits : 15);
    case HP_COMPRESS_DEFLATE:
        return -(window_bits ? window_bits : 15);
    default:
        return window_bits;
    }
}

/* Decodes z[0..zn) with zlib or brotli directly into a malloc'd buffer of
 * at most cap bytes, and returns its length in *outn. Returns true when
 * the data decoded completely: to the stream's end, or, with `partial`,
 * up to where the input stops (a flushed prefix). */
static CH_UNUSED bool ref_decode(hp_compress_algo_t algo, int window_bits, const uint8_t *z,
                                 size_t zn, bool partial, uint8_t **out, size_t *outn, size_t cap)
{
    uint8_t *buf = malloc(cap ? cap : 1);
    assert_non_null(buf);
    bool ok;
    size_t n;
    if (algo == HP_COMPRESS_BROTLI) {
        BrotliDecoderState *s = BrotliDecoderCreateInstance(NULL, NULL, NULL);
        assert_non_null(s);
        size_t ai = zn, ao = cap;
        const uint8_t *ni = z;
        uint8_t *no = buf;
        BrotliDecoderResult r = BrotliDecoderDecompressStream(s, &ai, &ni, &ao, &no, NULL);
        ok = ai == 0 && (r == BROTLI_DECODER_RESULT_SUCCESS ||
                         (partial && r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT));
        n = cap - ao;
        BrotliDecoderDestroyInstance(s);
    } else {
        z_stream zs;
        memset(&zs, 0, sizeof(zs));
        assert_int_equal(inflateInit2(&zs, ref_wbits(algo, window_bits)), Z_OK);
        zs.next_in = (Bytef *)z;
        zs.avail_in = (uInt)zn;
        zs.next_out = buf;
        zs.avail_out = (uInt)cap;
        int r = inflate(&zs, Z_SYNC_FLUSH);
        ok = zs.avail_in == 0 && (r == Z_STREAM_END || (partial && r == Z_OK));
        n = zs.total_out;
        inflateEnd(&zs);
    }
    *out = buf;
    *outn = n;
    return ok;
}

/* Asserts that z[0..zn) decodes (completely, or as a flushed prefix) to
 * want[0..wn). */
static CH_UNUSED void check_decodes(hp_compress_algo_t algo, int window_bits, const uint8_t *z,
                                    size_t zn, bool partial, const uint8_t *want, size_t wn)
{
    uint8_t *back;
    size_t bn;
    bool ok = ref_decode(algo, window_bits, z, zn, partial, &back, &bn, wn + 64);
    if (!ok || bn != wn || memcmp(back, want, wn) != 0)
        fail_msg("algo %d window %d: %zu bytes decode %s to %zu bytes, want %zu", (int)algo,
                 window_bits, zn, ok ? "fine" : "badly", bn, wn);
    free(back);
}

#endif
