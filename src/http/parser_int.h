/*
 * parser_int.h - byte classes and scanners of the HTTP parser (private).
 *
 * Each scanner returns the index of the first byte in [pos, end) outside its
 * class, or end, and comes in three flavours: scalar (table-driven), SSE4.2
 * (_mm_cmpestri over ranges of stop bytes) and AVX2 (32 bytes per step).
 * They are static inline so that each instance of the parse function in
 * parser.c inlines its own flavour. Invariant: no load reaches past `end`;
 * the last partial block is always finished by the scalar loop. Tests
 * include this header to compare the flavours byte for byte.
 *
 * scan_field_line, the grammar of one header field line on top of them, is
 * written once here for the request parser (parser.c) and the response
 * parser (resp_parser.c).
 */
#ifndef HOTPATH_HTTP_PARSER_INT_H
#define HOTPATH_HTTP_PARSER_INT_H

#include <stdbool.h>
#include <string.h>

#include "hotpath/common.h"
#include "config.h"

#include <stddef.h>
#include <stdint.h>

#if HP_HAVE_SSE42_TARGET || HP_HAVE_AVX2_TARGET
#include <immintrin.h>
#endif

/* ------------------------------------------------------------------ */
/* Byte classes                                                        */

#include "tchar_int.h"

#define R8(x) x, x, x, x, x, x, x, x
#define R16(x) R8(x), R8(x)

/* Request target and version: VCHAR 0x21-0x7E. */
static const uint8_t vchar_tbl[256] = {
    R16(0), R16(0),                                            /* 0x00-0x1f */
    0, R8(1), R8(1), R8(1), 1, 1, 1, 1, 1, 1, 1,               /* 0x20-0x3f */
    R16(1), R16(1),                                            /* 0x40-0x5f */
    R16(1), 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,    /* 0x60-0x7f */
};

/* field-value bytes (RFC 9110 §5.5): HTAB, SP, VCHAR, obs-text. */
static const uint8_t value_tbl[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, R16(0),   /* 0x00-0x1f */
    R16(1), R16(1), R16(1), R16(1), R16(1),                    /* 0x20-0x6f */
    R8(1), 1, 1, 1, 1, 1, 1, 1, 0,                             /* 0x70-0x7f */
    R16(1), R16(1), R16(1), R16(1), R16(1), R16(1), R16(1), R16(1),
};

/* Hex digit values for chunk sizes; 0xff = not a hex digit. */
static const uint8_t hex_tbl[256] = {
    R16(0xff), R16(0xff), R16(0xff),
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 10, 11, 12, 13, 14, 15, 0xff, R8(0xff), R16(0xff),
    0xff, 10, 11, 12, 13, 14, 15, 0xff, R8(0xff), R16(0xff),
    R16(0xff), R16(0xff), R16(0xff), R16(0xff), R16(0xff), R16(0xff), R16(0xff), R16(0xff),
};

/* ------------------------------------------------------------------ */
/* Scanners: each returns the index of the first byte in [pos, end) not in
 * its class, or end. */

static inline size_t scan_token_scalar(const char *buf, size_t pos, size_t end)
{
    while (pos < end && tchar_tbl[(uint8_t)buf[pos]])
        pos++;
    return pos;
}

static inline size_t scan_vchar_scalar(const char *buf, size_t pos, size_t end)
{
    while (pos < end && vchar_tbl[(uint8_t)buf[pos]])
        pos++;
    return pos;
}

static inline size_t scan_value_scalar(const char *buf, size_t pos, size_t end)
{
    while (pos < end && value_tbl[(uint8_t)buf[pos]])
        pos++;
    return pos;
}

#if HP_HAVE_SSE42_TARGET
/* Ranges of bytes that stop a scan, for _mm_cmpestri(_SIDD_CMP_RANGES).
 * The token set needs 10 ranges but cmpestri takes 8, so its list is a
 * superset that also stops at '|' and '~'; the caller re-checks with the
 * table and continues past such false stops. */
static const char sse_token_stop[16] __attribute__((aligned(16))) =
    "\x00\x20\x22\x22\x28\x29\x2c\x2c\x2f\x2f\x3a\x40\x5b\x5d\x7b\xff";
static const char sse_vchar_stop[16] __attribute__((aligned(16))) = "\x00\x20\x7f\xff";
static const char sse_value_stop[16] __attribute__((aligned(16))) = "\x00\x08\x0a\x1f\x7f\x7f";

#define SSE_RANGES (_SIDD_UBYTE_OPS | _SIDD_CMP_RANGES | _SIDD_LEAST_SIGNIFICANT)

__attribute__((target("sse4.2"))) static inline size_t scan_token_sse42(const char *buf,
                                                                        size_t pos, size_t end)
{
    const __m128i stop = _mm_load_si128((const __m128i *)sse_token_stop);
    while (end - pos >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(buf + pos));
        int i = _mm_cmpestri(stop, 16, v, 16, SSE_RANGES);
        if (i != 16) {
            if (!tchar_tbl[(uint8_t)buf[pos + i]])
                return pos + i;
            pos += i + 1; /* '|' or '~': a false stop */
            continue;
        }
        pos += 16;
    }
    return scan_token_scalar(buf, pos, end);
}

__attribute__((target("sse4.2"))) static inline size_t scan_vchar_sse42(const char *buf,
                                                                        size_t pos, size_t end)
{
    const __m128i stop = _mm_load_si128((const __m128i *)sse_vchar_stop);
    while (end - pos >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(buf + pos));
        int i = _mm_cmpestri(stop, 4, v, 16, SSE_RANGES);
        if (i != 16)
            return pos + i;
        pos += 16;
    }
    return scan_vchar_scalar(buf, pos, end);
}

__attribute__((target("sse4.2"))) static inline size_t scan_value_sse42(const char *buf,
                                                                        size_t pos, size_t end)
{
    const __m128i stop = _mm_load_si128((const __m128i *)sse_value_stop);
    while (end - pos >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(buf + pos));
        int i = _mm_cmpestri(stop, 6, v, 16, SSE_RANGES);
        if (i != 16)
            return pos + i;
        pos += 16;
    }
    return scan_value_scalar(buf, pos, end);
}
#endif

#if HP_HAVE_AVX2_TARGET
/* Token class by nibble lookup: byte b is a tchar iff
 * lo[b & 15] & hi[b >> 4] != 0, where hi[h] = 1 << h for h < 8 (bytes >=
 * 0x80 get 0) and lo[l] has bit h set when (h << 4 | l) is a tchar. */
static const uint8_t avx_token_lo[32] __attribute__((aligned(32))) = {
    0xe8, 0xfc, 0xf8, 0xfc, 0xfc, 0xfc, 0xfc, 0xfc, 0xf8, 0xf8, 0xf4, 0x54, 0xd0, 0x54, 0xf4, 0x70,
    0xe8, 0xfc, 0xf8, 0xfc, 0xfc, 0xfc, 0xfc, 0xfc, 0xf8, 0xf8, 0xf4, 0x54, 0xd0, 0x54, 0xf4, 0x70,
};
static const uint8_t avx_token_hi[32] __attribute__((aligned(32))) = {
    1, 2, 4, 8, 16, 32, 64, 128, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 2, 4, 8, 16, 32, 64, 128, 0, 0, 0, 0, 0, 0, 0, 0,
};

__attribute__((target("avx2"))) static inline size_t scan_token_avx2(const char *buf, size_t pos,
                                                                     size_t end)
{
    const __m256i lo_lut = _mm256_load_si256((const __m256i *)avx_token_lo);
    const __m256i hi_lut = _mm256_load_si256((const __m256i *)avx_token_hi);
    const __m256i nib = _mm256_set1_epi8(0x0f);
    while (end - pos >= 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(buf + pos));
        __m256i lo = _mm256_shuffle_epi8(lo_lut, _mm256_and_si256(v, nib));
        __m256i hi = _mm256_shuffle_epi8(hi_lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), nib));
        __m256i bad = _mm256_cmpeq_epi8(_mm256_and_si256(lo, hi), _mm256_setzero_si256());
        uint32_t m = (uint32_t)_mm256_movemask_epi8(bad);
        if (m)
            return pos + (size_t)__builtin_ctz(m);
        pos += 32;
    }
    if (end - pos >= 16) {
        /* The same test on a half-width block shortens the scalar tail. */
        __m128i v = _mm_loadu_si128((const __m128i *)(buf + pos));
        __m128i n4 = _mm256_castsi256_si128(nib);
        __m128i lo = _mm_shuffle_epi8(_mm256_castsi256_si128(lo_lut), _mm_and_si128(v, n4));
        __m128i hi = _mm_shuffle_epi8(_mm256_castsi256_si128(hi_lut),
                                      _mm_and_si128(_mm_srli_epi16(v, 4), n4));
        __m128i bad = _mm_cmpeq_epi8(_mm_and_si128(lo, hi), _mm_setzero_si128());
        uint32_t m = (uint32_t)_mm_movemask_epi8(bad);
        if (m)
            return pos + (size_t)__builtin_ctz(m);
        pos += 16;
    }
    return scan_token_scalar(buf, pos, end);
}

__attribute__((target("avx2"))) static inline size_t scan_vchar_avx2(const char *buf, size_t pos,
                                                                     size_t end)
{
    /* Signed compare: bytes >= 0x80 are negative, so "> 0x20" keeps
     * exactly 0x21-0x7f, and DEL is removed separately. */
    const __m256i sp = _mm256_set1_epi8(0x20);
    const __m256i del = _mm256_set1_epi8(0x7f);
    while (end - pos >= 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(buf + pos));
        __m256i good = _mm256_andnot_si256(_mm256_cmpeq_epi8(v, del), _mm256_cmpgt_epi8(v, sp));
        uint32_t m = ~(uint32_t)_mm256_movemask_epi8(good);
        if (m)
            return pos + (size_t)__builtin_ctz(m);
        pos += 32;
    }
    if (end - pos >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(buf + pos));
        __m128i good = _mm_andnot_si128(_mm_cmpeq_epi8(v, _mm256_castsi256_si128(del)),
                                        _mm_cmpgt_epi8(v, _mm256_castsi256_si128(sp)));
        uint32_t m = ~(uint32_t)_mm_movemask_epi8(good) & 0xffffu;
        if (m)
            return pos + (size_t)__builtin_ctz(m);
        pos += 16;
    }
    return scan_vchar_scalar(buf, pos, end);
}

__attribute__((target("avx2"))) static inline size_t scan_value_avx2(const char *buf, size_t pos,
                                                                     size_t end)
{
    /* Bad: unsigned b < 0x20 except HTAB, or DEL. */
    const __m256i c1f = _mm256_set1_epi8(0x1f);
    const __m256i tab = _mm256_set1_epi8('\t');
    const __m256i del = _mm256_set1_epi8(0x7f);
    while (end - pos >= 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(buf + pos));
        __m256i ctl = _mm256_cmpeq_epi8(_mm256_min_epu8(v, c1f), v);
        ctl = _mm256_andnot_si256(_mm256_cmpeq_epi8(v, tab), ctl);
        __m256i bad = _mm256_or_si256(ctl, _mm256_cmpeq_epi8(v, del));
        uint32_t m = (uint32_t)_mm256_movemask_epi8(bad);
        if (m)
            return pos + (size_t)__builtin_ctz(m);
        pos += 32;
    }
    if (end - pos >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(buf + pos));
        __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm256_castsi256_si128(c1f)), v);
        ctl = _mm_andnot_si128(_mm_cmpeq_epi8(v, _mm256_castsi256_si128(tab)), ctl);
        __m128i bad = _mm_or_si128(ctl, _mm_cmpeq_epi8(v, _mm256_castsi256_si128(del)));
        uint32_t m = (uint32_t)_mm_movemask_epi8(bad);
        if (m)
            return pos + (size_t)__builtin_ctz(m);
        pos += 16;
    }
    return scan_value_scalar(buf, pos, end);
}
#endif

/* Dispatch on a compile-time mode: after inlining into one of the three
 * parse instances below only one branch remains. */
#if HP_HAVE_AVX2_TARGET
#define IF_AVX2(mode, call) if ((mode) == HP_HTTP_SIMD_AVX2) return call;
#else
#define IF_AVX2(mode, call)
#endif
#if HP_HAVE_SSE42_TARGET
#define IF_SSE42(mode, call) if ((mode) == HP_HTTP_SIMD_SSE42) return call;
#else
#define IF_SSE42(mode, call)
#endif

HP_INLINE size_t scan_token(int mode, const char *buf, size_t pos, size_t end)
{
    IF_AVX2(mode, scan_token_avx2(buf, pos, end))
    IF_SSE42(mode, scan_token_sse42(buf, pos, end))
    (void)mode;
    return scan_token_scalar(buf, pos, end);
}

HP_INLINE size_t scan_vchar(int mode, const char *buf, size_t pos, size_t end)
{
    IF_AVX2(mode, scan_vchar_avx2(buf, pos, end))
    IF_SSE42(mode, scan_vchar_sse42(buf, pos, end))
    (void)mode;
    return scan_vchar_scalar(buf, pos, end);
}

HP_INLINE size_t scan_value(int mode, const char *buf, size_t pos, size_t end)
{
    IF_AVX2(mode, scan_value_avx2(buf, pos, end))
    IF_SSE42(mode, scan_value_sse42(buf, pos, end))
    (void)mode;
    return scan_value_scalar(buf, pos, end);
}

/* Response head parse (resp_parser.c) with the scanner flavour forced to at most
 * `mode` (HP_HTTP_SIMD_*; a flavour the CPU lacks falls back to the best
 * below it), so tests and benchmarks can compare the flavours. */
struct hp_resp_parser;
/* ---- field-value helpers shared by the request and response parsers ---- */

HP_INLINE bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

#if HP_HAVE_AVX2_TARGET
/* Classifies the 32 bytes at p: bit k of *tok is set when p[k] is not a
 * tchar, bit k of *stop when p[k] ends a field value (a control byte other
 * than HTAB, or DEL), with the same tests as the AVX2 scanners. */
__attribute__((target("avx2"))) static inline void line_masks_avx2(const char *p, uint32_t *tok,
                                                                   uint32_t *stop)
{
    const __m256i lo_lut = _mm256_load_si256((const __m256i *)avx_token_lo);
    const __m256i hi_lut = _mm256_load_si256((const __m256i *)avx_token_hi);
    const __m256i nib = _mm256_set1_epi8(0x0f);
    __m256i v = _mm256_loadu_si256((const __m256i *)p);
    __m256i lo = _mm256_shuffle_epi8(lo_lut, _mm256_and_si256(v, nib));
    __m256i hi = _mm256_shuffle_epi8(hi_lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), nib));
    __m256i bad = _mm256_cmpeq_epi8(_mm256_and_si256(lo, hi), _mm256_setzero_si256());
    *tok = (uint32_t)_mm256_movemask_epi8(bad);
    __m256i ctl = _mm256_cmpeq_epi8(_mm256_min_epu8(v, _mm256_set1_epi8(0x1f)), v);
    ctl = _mm256_andnot_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('\t')), ctl);
    bad = _mm256_or_si256(ctl, _mm256_cmpeq_epi8(v, _mm256_set1_epi8(0x7f)));
    *stop = (uint32_t)_mm256_movemask_epi8(bad);
}
#endif

/* ---- the header section, one field line at a time ---------------------- */

/* Where a scan of the header section stands between calls (the parsers
 * keep it in their own state word). */
enum {
    FL_AT_LINE = 0, /* at the start of a line: a field or the blank line */
    FL_AT_NAME,     /* in the name; field_line.name is the line start */
    FL_AT_VALUE,    /* in the value; field_line.value is its start */
};

/* What scan_field_line found. */
enum {
    FL_FIELD,   /* a whole field line: name, nlen, value and eol are set */
    FL_END,     /* the blank line that ends the head */
    FL_NEED,    /* the line goes on past `end`: *at says where it stopped */
    FL_BAD,     /* obs-fold, no name, bytes between name and colon, bare CR,
                   a control byte in the value */
    FL_FULL,    /* a field line starts, but `room` said no more fit */
};

typedef struct field_line {
    uint32_t name;  /* start of the name, which is the line start */
    uint32_t nlen;  /* length of the name */
    uint32_t value; /* start of the value, after leading OWS */
    uint32_t eol;   /* FL_FIELD: the CR or LF ending the line; the value
                       ends there, trailing OWS included */
} field_line_t;

/* The field-line grammar of RFC 9112 §5 for the request and response
 * parsers: field-name ":" OWS field-value OWS, then CRLF or a bare LF;
 * obs-fold, a bare CR or a control byte other than HTAB in the value is
 * malformed. Scans buf[*pos..end) from where *at and *fl say the last call
 * stopped, and leaves *pos after the line (FL_FIELD, FL_END) or where the
 * next call resumes (FL_NEED: a CR is looked at again when its LF arrives).
 * `room` says whether another field may start; `line_block` lets the AVX2
 * flavour classify a whole line of up to 32 bytes with one load (the
 * response parser asks for it). Always inlined, so the parsers keep the
 * position and the line in registers. */
HP_INLINE int scan_field_line(int mode, const char *buf, size_t *pos, size_t end, int *at,
                              field_line_t *fl, bool room, bool line_block)
{
    size_t p = *pos, i;
    if (HP_UNLIKELY(*at != FL_AT_LINE)) { /* resuming a line: once per call at most */
        if (*at == FL_AT_NAME)
            goto st_name;
        goto st_value;
    }
    if (p >= end)
        goto need_line;
    if (buf[p] == '\r') {
        if (p + 1 >= end)
            goto need_line;
        if (buf[p + 1] != '\n')
            return FL_BAD;
        *pos = p + 2;
        return FL_END;
    }
    if (buf[p] == '\n') {
        *pos = p + 1;
        return FL_END;
    }
    if (is_ows(buf[p]))
        return FL_BAD; /* obs-fold (RFC 9112 §5.2) */
    if (!room)
        return FL_FULL;
    fl->name = (uint32_t)p;
#if HP_HAVE_AVX2_TARGET
    /* Most field lines fit in 32 bytes: one load classifies the name and
     * finds the line end at once, instead of one scan for each. */
    if (line_block && mode == HP_HTTP_SIMD_AVX2 && end - p >= 32) {
        uint32_t tok, stop;
        line_masks_avx2(buf + p, &tok, &stop);
        if (!tok) {
            p += 32; /* a name of 32+ bytes: go on after the block */
            goto st_name;
        }
        size_t t = (size_t)__builtin_ctz(tok);
        if (buf[p + t] != ':' || t == 0)
            return FL_BAD;
        fl->nlen = (uint32_t)t;
        /* Stop bytes are not tchars, so after the check above the first
         * stop lies past the colon and ends the line. Taking the line end
         * straight from the mask keeps the value start (only needed for
         * framing fields) off the chain that leads to the next line. */
        size_t q = p + t + 1;
        if (stop) {
            i = p + (size_t)__builtin_ctz(stop);
            while (is_ows(buf[q])) /* stops at buf[i] at the latest */
                q++;
            fl->value = (uint32_t)q;
            goto line_end;
        }
        while (q < end && is_ows(buf[q]))
            q++;
        fl->value = (uint32_t)q;
        /* [value, block end) are all value bytes. */
        p = q > p + 32 ? q : p + 32;
        goto st_value;
    }
#else
    (void)line_block;
#endif
st_name:
    i = scan_token(mode, buf, p, end);
    if (i == end) {
        *pos = i;
        *at = FL_AT_NAME;
        return FL_NEED;
    }
    if (buf[i] != ':' || i == fl->name)
        return FL_BAD; /* no name, or SP before the colon */
    fl->nlen = (uint32_t)(i - fl->name);
    p = i + 1;
    fl->value = (uint32_t)p;
st_value:
    /* Leading OWS moves the value start along with the scan position;
     * once a value byte is seen the start stays. */
    if (p == fl->value) {
        while (p < end && is_ows(buf[p]))
            p++;
        fl->value = (uint32_t)p;
    }
    i = scan_value(mode, buf, p, end);
#if HP_HAVE_AVX2_TARGET
line_end:
#endif
    if (i == end || (buf[i] == '\r' && i + 1 >= end)) {
        *pos = i;
        *at = FL_AT_VALUE;
        return FL_NEED;
    }
    if (buf[i] == '\r') {
        if (buf[i + 1] != '\n')
            return FL_BAD; /* bare CR */
        *pos = i + 2;
    } else if (buf[i] == '\n') {
        *pos = i + 1;
    } else {
        return FL_BAD; /* NUL or another control byte */
    }
    fl->eol = (uint32_t)i;
    *at = FL_AT_LINE;
    return FL_FIELD;

need_line:
    *pos = p;
    *at = FL_AT_LINE;
    return FL_NEED;
}

/* ---- field values: case-insensitive compares, the framing fields ------- */

/* Compares p[0..n) with the lower-case constant `lc` ignoring ASCII case,
 * a word at a time (n and lc are constants after inlining). Exact for
 * tokens and field values: `lc` holds only lower-case letters, digits and
 * '-', which all have bit 0x20 set, and no byte allowed in a token or value
 * other than an upper-case letter maps onto one of them under | 0x20. */
HP_INLINE bool ieq(const char *p, const char *lc, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t a, b;
        memcpy(&a, p + i, 8);
        memcpy(&b, lc + i, 8);
        if ((a | 0x2020202020202020ull) != b)
            return false;
    }
    if (i + 4 <= n) {
        uint32_t a, b;
        memcpy(&a, p + i, 4);
        memcpy(&b, lc + i, 4);
        if ((a | 0x20202020u) != b)
            return false;
        i += 4;
    }
    for (; i < n; i++)
        if (((uint8_t)p[i] | 0x20) != (uint8_t)lc[i])
            return false;
    return true;
}

/* Runs `body` for each non-empty element of the comma list p[0..n), with
 * OWS around the elements trimmed (RFC 9110 §5.6.1 recipient rules). */
#define FOR_EACH_ELEM(p, n, e, elen, body)                                     \
    for (size_t i_ = 0; i_ < (n);) {                                           \
        while (i_ < (n) && (is_ows((p)[i_]) || (p)[i_] == ','))                \
            i_++;                                                              \
        size_t s_ = i_;                                                        \
        while (i_ < (n) && (p)[i_] != ',')                                     \
            i_++;                                                              \
        size_t t_ = i_;                                                        \
        while (t_ > s_ && is_ows((p)[t_ - 1]))                                 \
            t_--;                                                              \
        if (t_ > s_) {                                                         \
            const char *e = (p) + s_;                                          \
            size_t elen = t_ - s_;                                             \
            body                                                               \
        }                                                                      \
    }

/* Content-Length = 1#DIGIT elements that must all be equal ("5, 5"), as
 * RFC 9110 §8.6 lets a recipient accept. Returns 0 with *out set, or -1
 * when malformed, differing or beyond 64 bits. */
static inline int parse_content_length(const char *p, size_t n, uint64_t *out)
{
    size_t i = 0;
    bool have = false;
    uint64_t v = 0;
    for (;;) {
        if (i >= n || (uint8_t)(p[i] - '0') > 9)
            return -1;
        uint64_t x = 0;
        while (i < n && (uint8_t)(p[i] - '0') <= 9) {
            unsigned d = (uint8_t)(p[i] - '0');
            if (x > (UINT64_MAX - d) / 10)
                return -1;
            x = x * 10 + d;
            i++;
        }
        if (have && x != v)
            return -1;
        v = x;
        have = true;
        while (i < n && is_ows(p[i]))
            i++;
        if (i == n)
            break;
        if (p[i] != ',')
            return -1;
        i++;
        while (i < n && is_ows(p[i]))
            i++;
    }
    *out = v;
    return 0;
}

/* Connection (RFC 9110 §7.6.1): which of close and keep-alive the comma
 * list holds, as CONN_TOK_* bits. */
enum { CONN_TOK_CLOSE = 1, CONN_TOK_KEEP_ALIVE = 2 };
static inline unsigned connection_tokens(const char *v, size_t n)
{
    unsigned t = 0;
    FOR_EACH_ELEM(v, n, e, elen, {
        if (elen == 5 && ieq(e, "close", 5))
            t |= CONN_TOK_CLOSE;
        else if (elen == 10 && ieq(e, "keep-alive", 10))
            t |= CONN_TOK_KEEP_ALIVE;
    })
    return t;
}

/* Transfer-Encoding codings of one field, added to what earlier fields
 * said: *chunked for "chunked", *other for any other coding. Returns -1
 * when chunked is applied twice (a framing error, RFC 9112 §6.1). */
static inline int te_codings(const char *v, size_t n, bool *chunked, bool *other)
{
    FOR_EACH_ELEM(v, n, e, elen, {
        if (elen == 7 && ieq(e, "chunked", 7)) {
            if (*chunked)
                return -1;
            *chunked = true;
        } else {
            *other = true;
        }
    })
    return 0;
}

/* A Content-Length field, checked against one `seen` before (*cl holds
 * it): 0 with *cl set, or -1 when malformed or differing. */
static inline int content_length_field(const char *v, size_t n, bool seen, uint64_t *cl)
{
    uint64_t x;
    if (parse_content_length(v, n, &x) < 0 || (seen && x != *cl))
        return -1;
    *cl = x;
    return 0;
}

/* The scanner flavour hp_http_parser_init/set_simd put in force, so the
 * response parser follows HOTPATH_SIMD too. */
int hp_http_parser_mode(void);

int hp_resp_parser_head_mode(struct hp_resp_parser *r, const char *buf, size_t len, int mode);

#endif
