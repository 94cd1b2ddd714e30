/*
 * wire_int.h - AMQP 0-9-1 wire primitives: a bounds-checked reader over
 * received bytes and a writer into a caller's buffer, both big-endian
 * (network order), as the specification's "short", "long", "longlong",
 * "shortstr" and "longstr" domains are.
 *
 * Both are sticky on error: after the first read past the end (or an
 * invalid length) the reader's `bad` is set and every later read returns
 * zero; after the first write past `cap` the writer's `overflow` is set
 * and nothing more is written. A codec therefore reads or writes a whole
 * structure and checks once at the end. Strings are never copied on
 * decode: hp_amqp_bytes_t points into the received bytes and is valid as
 * long as they are.
 */
#ifndef HOTPATH_AMQP_WIRE_INT_H
#define HOTPATH_AMQP_WIRE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hotpath/amqp_table.h"

typedef struct hp_amqp_rd {
    const uint8_t *p;
    size_t len, pos;
    bool bad;
} hp_amqp_rd_t;

typedef struct hp_amqp_wr {
    uint8_t *buf;
    size_t len, cap;
    bool overflow;
} hp_amqp_wr_t;

static inline hp_amqp_rd_t hp_amqp_rd(const void *p, size_t len)
{
    return (hp_amqp_rd_t){.p = p, .len = len};
}

static inline hp_amqp_wr_t hp_amqp_wr(void *buf, size_t cap)
{
    return (hp_amqp_wr_t){.buf = buf, .cap = cap};
}

/* `n` bytes at the read position, advancing past them, or NULL (and bad)
 * when fewer are left. */
static inline const uint8_t *hp_amqp_rd_take(hp_amqp_rd_t *r, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *at = r->p + r->pos;
    r->pos += n;
    return at;
}

static inline uint8_t hp_amqp_rd_u8(hp_amqp_rd_t *r)
{
    const uint8_t *b = hp_amqp_rd_take(r, 1);
    return b ? b[0] : 0;
}

static inline uint16_t hp_amqp_rd_u16(hp_amqp_rd_t *r)
{
    const uint8_t *b = hp_amqp_rd_take(r, 2);
    return b ? (uint16_t)(b[0] << 8 | b[1]) : 0;
}

static inline uint32_t hp_amqp_rd_u32(hp_amqp_rd_t *r)
{
    const uint8_t *b = hp_amqp_rd_take(r, 4);
    return b ? (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3] : 0;
}

static inline uint64_t hp_amqp_rd_u64(hp_amqp_rd_t *r)
{
    uint64_t hi = hp_amqp_rd_u32(r);
    return hi << 32 | hp_amqp_rd_u32(r);
}

/* IEEE 754 single and double precision, big-endian like the integers:
 * the bits are read as an integer and copied into the float (memcpy is
 * the defined way to reinterpret them). */
static inline float hp_amqp_rd_float(hp_amqp_rd_t *r)
{
    uint32_t bits = hp_amqp_rd_u32(r);
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

static inline double hp_amqp_rd_double(hp_amqp_rd_t *r)
{
    uint64_t bits = hp_amqp_rd_u64(r);
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

/* shortstr: one length octet, then the bytes. */
static inline hp_amqp_bytes_t hp_amqp_rd_shortstr(hp_amqp_rd_t *r)
{
    uint8_t n = hp_amqp_rd_u8(r);
    const uint8_t *b = hp_amqp_rd_take(r, n);
    return b ? (hp_amqp_bytes_t){b, n} : (hp_amqp_bytes_t){NULL, 0};
}

/* longstr: a 32-bit length, then the bytes. */
static inline hp_amqp_bytes_t hp_amqp_rd_longstr(hp_amqp_rd_t *r)
{
    uint32_t n = hp_amqp_rd_u32(r);
    const uint8_t *b = hp_amqp_rd_take(r, n);
    return b ? (hp_amqp_bytes_t){b, n} : (hp_amqp_bytes_t){NULL, 0};
}

/* Room for `n` bytes at the write position, advancing past them, or NULL
 * (and overflow) when they do not fit. */
static inline uint8_t *hp_amqp_wr_take(hp_amqp_wr_t *w, size_t n)
{
    if (w->overflow || w->cap - w->len < n) {
        w->overflow = true;
        return NULL;
    }
    uint8_t *at = w->buf + w->len;
    w->len += n;
    return at;
}

static inline void hp_amqp_wr_u8(hp_amqp_wr_t *w, uint8_t v)
{
    uint8_t *b = hp_amqp_wr_take(w, 1);
    if (b)
        b[0] = v;
}

static inline void hp_amqp_wr_u16(hp_amqp_wr_t *w, uint16_t v)
{
    uint8_t *b = hp_amqp_wr_take(w, 2);
    if (b) {
        b[0] = (uint8_t)(v >> 8);
        b[1] = (uint8_t)v;
    }
}

static inline void hp_amqp_wr_u32(hp_amqp_wr_t *w, uint32_t v)
{
    uint8_t *b = hp_amqp_wr_take(w, 4);
    if (b) {
        b[0] = (uint8_t)(v >> 24);
        b[1] = (uint8_t)(v >> 16);
        b[2] = (uint8_t)(v >> 8);
        b[3] = (uint8_t)v;
    }
}

static inline void hp_amqp_wr_u64(hp_amqp_wr_t *w, uint64_t v)
{
    hp_amqp_wr_u32(w, (uint32_t)(v >> 32));
    hp_amqp_wr_u32(w, (uint32_t)v);
}

static inline void hp_amqp_wr_float(hp_amqp_wr_t *w, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    hp_amqp_wr_u32(w, bits);
}

static inline void hp_amqp_wr_double(hp_amqp_wr_t *w, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    hp_amqp_wr_u64(w, bits);
}

static inline void hp_amqp_wr_bytes(hp_amqp_wr_t *w, const void *p, size_t n)
{
    uint8_t *b = hp_amqp_wr_take(w, n);
    if (b && n)
        memcpy(b, p, n);
}

/* A shortstr longer than 255 bytes cannot be encoded: overflow is set. */
static inline void hp_amqp_wr_shortstr(hp_amqp_wr_t *w, hp_amqp_bytes_t s)
{
    if (s.len > 255) {
        w->overflow = true;
        return;
    }
    hp_amqp_wr_u8(w, (uint8_t)s.len);
    hp_amqp_wr_bytes(w, s.ptr, s.len);
}

static inline void hp_amqp_wr_longstr(hp_amqp_wr_t *w, hp_amqp_bytes_t s)
{
    hp_amqp_wr_u32(w, s.len);
    hp_amqp_wr_bytes(w, s.ptr, s.len);
}

#endif
