/*
 * test_table.c - unit tests for AMQP 0-9-1 field tables and arrays
 * (src/amqp/table.c).
 *
 * Decoding: one hand-written byte vector per value type (the bytes worked
 * out from the spec's field-table grammar and the errata's type octets,
 * not produced by the code under test), each read back at the edge of a
 * PROT_NONE guard page so that a read one byte too far faults in any
 * build; every proper prefix of each vector must be refused as
 * truncated. Validation: unknown type octets (all 239 of them), empty
 * keys, inner lengths past the outer body, malformed nested bodies, and
 * nesting at the limit, one past it and far past it. Building: the exact
 * bytes of small tables, round trips of every type with nested tables
 * and arrays, and every error (too small a buffer at every size, keys
 * too long or missing, unbalanced close, nesting too deep, out-of-range
 * integers, malformed copied bodies), with a canary after the buffer.
 */
#include "hotpath/amqp_table.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

/* ------------------------------------------------------------------ */
/* Bytes at a guard page                                               */

static uint8_t *guard;
static size_t page;

static int group_setup(void **state)
{
    (void)state;
    page = (size_t)sysconf(_SC_PAGESIZE);
    guard = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard == MAP_FAILED)
        return -1;
    return mprotect(guard + page, page, PROT_NONE);
}

static int group_teardown(void **state)
{
    (void)state;
    munmap(guard, 2 * page);
    return 0;
}

/* n bytes ending right at the guard page. Only one such copy exists at a
 * time: placing another overwrites it. */
static hp_amqp_bytes_t at_guard(const void *p, size_t n)
{
    assert_true(n <= page);
    uint8_t *at = guard + page - n;
    if (n)
        memcpy(at, p, n);
    return (hp_amqp_bytes_t){at, (uint32_t)n};
}

#define BYTES(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

/* ------------------------------------------------------------------ */
/* Decoding one value of each type                                     */

/* Every proper prefix of a one-entry table (or array) body is truncated
 * and must be refused, by the iterator and the validator alike; the
 * empty prefix is the empty table and valid. */
static void prefixes_refused(const uint8_t *p, size_t n, bool array)
{
    for (size_t k = 1; k < n; k++) {
        hp_amqp_bytes_t b = at_guard(p, k);
        hp_amqp_iter_t it = array ? hp_amqp_array_iter(b) : hp_amqp_table_iter(b);
        hp_amqp_bytes_t key;
        hp_amqp_value_t v;
        int r = array ? hp_amqp_array_next(&it, &v) : hp_amqp_table_next(&it, &key, &v);
        assert_int_equal(r, -EPROTO);
        assert_int_equal(array ? hp_amqp_array_validate(b) : hp_amqp_table_validate(b), -EPROTO);
    }
    hp_amqp_bytes_t empty = at_guard(p, 0);
    assert_int_equal(hp_amqp_table_validate(empty), 0);
}

/* Decodes a table body holding exactly one entry named "k"; the value's
 * bytes (if any) stay valid until the next at_guard. */
static hp_amqp_value_t one(const uint8_t *p, size_t n)
{
    prefixes_refused(p, n, false);
    hp_amqp_bytes_t b = at_guard(p, n);
    assert_int_equal(hp_amqp_table_validate(b), 0);
    hp_amqp_iter_t it = hp_amqp_table_iter(b);
    hp_amqp_bytes_t key;
    hp_amqp_value_t v;
    assert_int_equal(hp_amqp_table_next(&it, &key, &v), 1);
    assert_int_equal(key.len, 1);
    assert_memory_equal(key.ptr, "k", 1);
    assert_int_equal(v.type, p[2]);
    hp_amqp_value_t again;
    assert_int_equal(hp_amqp_table_next(&it, &key, &again), 0);
    assert_int_equal(hp_amqp_table_next(&it, &key, &again), 0);
    return v;
}

/* The same for an array body holding exactly one value. */
static hp_amqp_value_t one_elem(const uint8_t *p, size_t n)
{
    prefixes_refused(p, n, true);
    hp_amqp_bytes_t b = at_guard(p, n);
    assert_int_equal(hp_amqp_array_validate(b), 0);
    hp_amqp_iter_t it = hp_amqp_array_iter(b);
    hp_amqp_value_t v, again;
    assert_int_equal(hp_amqp_array_next(&it, &v), 1);
    assert_int_equal(v.type, p[0]);
    assert_int_equal(hp_amqp_array_next(&it, &again), 0);
    return v;
}

static void test_decode_integers(void **state)
{
    (void)state;
    hp_amqp_value_t v;

    v = one(BYTES(1, 'k', 't', 0x01));
    assert_true(v.b);
    v = one(BYTES(1, 'k', 't', 0x00));
    assert_false(v.b);
    v = one(BYTES(1, 'k', 't', 0x02)); /* any non-zero octet is true */
    assert_true(v.b);

    v = one(BYTES(1, 'k', 'b', 0xff));
    assert_int_equal(v.i, -1);
    v = one(BYTES(1, 'k', 'b', 0x80));
    assert_int_equal(v.i, -128);
    v = one(BYTES(1, 'k', 'b', 0x7f));
    assert_int_equal(v.i, 127);
    v = one(BYTES(1, 'k', 'B', 0xff));
    assert_int_equal(v.u, 255);

    v = one(BYTES(1, 'k', 's', 0x80, 0x00));
    assert_int_equal(v.i, -32768);
    v = one(BYTES(1, 'k', 's', 0x01, 0x02));
    assert_int_equal(v.i, 0x0102);
    v = one(BYTES(1, 'k', 'u', 0xff, 0xfe));
    assert_int_equal(v.u, 65534);

    v = one(BYTES(1, 'k', 'I', 0xff, 0xff, 0xff, 0xfe));
    assert_int_equal(v.i, -2);
    v = one(BYTES(1, 'k', 'I', 0x7f, 0xff, 0xff, 0xff));
    assert_int_equal(v.i, INT32_MAX);
    v = one(BYTES(1, 'k', 'i', 0xff, 0xff, 0xff, 0xff));
    assert_true(v.u == UINT32_MAX);
    v = one(BYTES(1, 'k', 'i', 0x12, 0x34, 0x56, 0x78));
    assert_true(v.u == 0x12345678u);

    v = one(BYTES(1, 'k', 'l', 0x80, 0, 0, 0, 0, 0, 0, 0x01));
    assert_true(v.i == INT64_MIN + 1);
    v = one(BYTES(1, 'k', 'l', 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08));
    assert_true(v.i == 0x0102030405060708ll);

    /* 1700000000 = 0x6553f100: 2023-11-14T22:13:20Z. */
    v = one(BYTES(1, 'k', 'T', 0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00));
    assert_true(v.u == 1700000000u);
    v = one(BYTES(1, 'k', 'T', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
    assert_true(v.u == UINT64_MAX);

    /* Decimal 123.45: scale 2, value 12345 = 0x3039. */
    v = one(BYTES(1, 'k', 'D', 0x02, 0x00, 0x00, 0x30, 0x39));
    assert_int_equal(v.dec.scale, 2);
    assert_int_equal(v.dec.value, 12345);
}

static void test_decode_floats(void **state)
{
    (void)state;
    hp_amqp_value_t v;
    /* 1.5f = sign 0, exponent 127, mantissa 0x400000: 0x3fc00000. */
    v = one(BYTES(1, 'k', 'f', 0x3f, 0xc0, 0x00, 0x00));
    assert_true(v.f == 1.5f);
    /* -2.0f = 0xc0000000. */
    v = one(BYTES(1, 'k', 'f', 0xc0, 0x00, 0x00, 0x00));
    assert_true(v.f == -2.0f);
    /* The double nearest pi: 0x400921fb54442d18. */
    v = one(BYTES(1, 'k', 'd', 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18));
    assert_true(v.d == 3.141592653589793);
    /* 1.0 = 0x3ff0000000000000; a NaN's bits come through as they are. */
    v = one(BYTES(1, 'k', 'd', 0x3f, 0xf0, 0, 0, 0, 0, 0, 0));
    assert_true(v.d == 1.0);
    v = one(BYTES(1, 'k', 'd', 0x7f, 0xf8, 0, 0, 0, 0, 0, 0x01));
    assert_true(isnan(v.d));
}

static void test_decode_strings(void **state)
{
    (void)state;
    hp_amqp_value_t v;
    v = one(BYTES(1, 'k', 'S', 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'));
    assert_int_equal(v.bytes.len, 5);
    assert_memory_equal(v.bytes.ptr, "hello", 5);
    /* The value is a slice of the input, not a copy. */
    assert_ptr_equal(v.bytes.ptr, guard + page - 5);

    v = one(BYTES(1, 'k', 'S', 0, 0, 0, 0));
    assert_int_equal(v.bytes.len, 0);

    v = one(BYTES(1, 'k', 'x', 0, 0, 0, 3, 0x00, 0xff, 0xce));
    assert_int_equal(v.bytes.len, 3);
    assert_memory_equal(v.bytes.ptr, "\x00\xff\xce", 3);

    v = one(BYTES(1, 'k', 'V'));
    assert_int_equal(v.type, HP_AMQP_T_VOID);

    /* A long key: 255 bytes, the most a shortstr holds. */
    uint8_t longkey[1 + 255 + 1];
    longkey[0] = 255;
    memset(longkey + 1, 'a', 255);
    longkey[256] = 'V';
    hp_amqp_bytes_t b = at_guard(longkey, sizeof(longkey));
    assert_int_equal(hp_amqp_table_validate(b), 0);
    hp_amqp_value_t got;
    char name[256];
    memset(name, 'a', 255);
    name[255] = 0;
    assert_int_equal(hp_amqp_table_get(b, name, &got), 0);
    assert_int_equal(got.type, HP_AMQP_T_VOID);
}

static void test_decode_nested(void **state)
{
    (void)state;
    hp_amqp_value_t v;
    /* A table holding {"a": U8 7}: inner body 01 'a' 'B' 07 (4 bytes). */
    v = one(BYTES(1, 'k', 'F', 0, 0, 0, 4, 1, 'a', 'B', 7));
    assert_int_equal(v.bytes.len, 4);
    hp_amqp_iter_t in = hp_amqp_table_iter(v.bytes);
    hp_amqp_bytes_t key;
    hp_amqp_value_t iv;
    assert_int_equal(hp_amqp_table_next(&in, &key, &iv), 1);
    assert_int_equal(key.len, 1);
    assert_memory_equal(key.ptr, "a", 1);
    assert_int_equal(iv.type, 'B');
    assert_int_equal(iv.u, 7);
    assert_int_equal(hp_amqp_table_next(&in, &key, &iv), 0);

    /* An array [I32 1, void, true]: 'I' 00 00 00 01, 'V', 't' 01 (8). */
    v = one(BYTES(1, 'k', 'A', 0, 0, 0, 8, 'I', 0, 0, 0, 1, 'V', 't', 1));
    assert_int_equal(v.bytes.len, 8);
    in = hp_amqp_array_iter(v.bytes);
    assert_int_equal(hp_amqp_array_next(&in, &iv), 1);
    assert_int_equal(iv.type, 'I');
    assert_int_equal(iv.i, 1);
    assert_int_equal(hp_amqp_array_next(&in, &iv), 1);
    assert_int_equal(iv.type, 'V');
    assert_int_equal(hp_amqp_array_next(&in, &iv), 1);
    assert_int_equal(iv.type, 't');
    assert_true(iv.b);
    assert_int_equal(hp_amqp_array_next(&in, &iv), 0);

    /* Empty nested table and array. */
    v = one(BYTES(1, 'k', 'F', 0, 0, 0, 0));
    assert_int_equal(v.bytes.len, 0);
    v = one(BYTES(1, 'k', 'A', 0, 0, 0, 0));
    assert_int_equal(v.bytes.len, 0);

    /* Arrays at the top, one value of a few types. */
    v = one_elem(BYTES('S', 0, 0, 0, 2, 'h', 'i'));
    assert_memory_equal(v.bytes.ptr, "hi", 2);
    v = one_elem(BYTES('s', 0xff, 0xff));
    assert_int_equal(v.i, -1);
    v = one_elem(BYTES('F', 0, 0, 0, 3, 1, 'z', 'V'));
    assert_int_equal(v.bytes.len, 3);
    v = one_elem(BYTES('V'));
    assert_int_equal(v.type, 'V');
}

/* Several entries in a row: keys, values and positions line up. */
static void test_decode_sequence(void **state)
{
    (void)state;
    hp_amqp_bytes_t b = at_guard(BYTES(
        /* "x-max-length": I64 1000 */
        12, 'x', '-', 'm', 'a', 'x', '-', 'l', 'e', 'n', 'g', 't', 'h', 'l', 0, 0, 0, 0, 0, 0, 0x03,
        0xe8,
        /* "durable": true */
        7, 'd', 'u', 'r', 'a', 'b', 'l', 'e', 't', 1,
        /* "n": "q1" */
        1, 'n', 'S', 0, 0, 0, 2, 'q', '1'));
    assert_int_equal(hp_amqp_table_validate(b), 0);
    /* The same bytes are not an array: "\x0c" is no type octet. */
    assert_int_equal(hp_amqp_array_validate(b), -EPROTO);

    hp_amqp_iter_t it = hp_amqp_table_iter(b);
    hp_amqp_bytes_t key;
    hp_amqp_value_t v;
    assert_int_equal(hp_amqp_table_next(&it, &key, &v), 1);
    assert_int_equal(key.len, 12);
    assert_memory_equal(key.ptr, "x-max-length", 12);
    assert_true(v.type == 'l' && v.i == 1000);
    assert_int_equal(it.pos, 22);
    assert_int_equal(hp_amqp_table_next(&it, &key, &v), 1);
    assert_memory_equal(key.ptr, "durable", 7);
    assert_true(v.type == 't' && v.b);
    assert_int_equal(hp_amqp_table_next(&it, &key, &v), 1);
    assert_true(v.type == 'S' && v.bytes.len == 2);
    assert_int_equal(hp_amqp_table_next(&it, &key, &v), 0);
    assert_int_equal(it.pos, b.len);

    /* The empty table, even with no pointer. */
    hp_amqp_bytes_t none = {NULL, 0};
    it = hp_amqp_table_iter(none);
    assert_int_equal(hp_amqp_table_next(&it, &key, &v), 0);
    assert_int_equal(hp_amqp_table_validate(none), 0);
    assert_int_equal(hp_amqp_array_validate(none), 0);
    assert_int_equal(hp_amqp_table_get(none, "a", &v), -ENOENT);
}

/* ------------------------------------------------------------------ */
/* table_get                                                           */

static void test_get(void **state)
{
    (void)state;
    hp_amqp_bytes_t b = at_guard(BYTES(1, 'a', 'B', 1, 2, 'b', 'c', 'B', 2, 1, 'a', 'B', 3));
    hp_amqp_value_t v;
    assert_int_equal(hp_amqp_table_get(b, "a", &v), 0);
    assert_int_equal(v.u, 1); /* the first of two "a" */
    assert_int_equal(hp_amqp_table_get(b, "bc", &v), 0);
    assert_int_equal(v.u, 2);
    assert_int_equal(hp_amqp_table_get(b, "b", &v), -ENOENT);
    assert_int_equal(hp_amqp_table_get(b, "bcd", &v), -ENOENT);
    assert_int_equal(hp_amqp_table_get(b, "", &v), -ENOENT);

    /* Malformed after the key: found before the damage is reached. */
    b = at_guard(BYTES(1, 'a', 'B', 1, 1, 'b', 'Z', 0));
    assert_int_equal(hp_amqp_table_get(b, "a", &v), 0);
    assert_int_equal(v.u, 1);
    /* Malformed before the key, or instead of it. */
    assert_int_equal(hp_amqp_table_get(b, "c", &v), -EPROTO);
    assert_int_equal(hp_amqp_table_get(b, "b", &v), -EPROTO);
    b = at_guard(BYTES(1, 'a', 'S', 0, 0, 0, 9, 'x', 1, 'c', 'V'));
    assert_int_equal(hp_amqp_table_get(b, "c", &v), -EPROTO);
}

/* ------------------------------------------------------------------ */
/* Validation                                                          */

static bool known_type(int t)
{
    return t && strchr("tbBsuIilfdDSxATFV", t) != NULL;
}

static void test_validate_unknown_types(void **state)
{
    (void)state;
    int unknown = 0;
    for (int t = 0; t < 256; t++) {
        /* The type followed by enough bytes for any fixed-size value. */
        uint8_t tv[] = {1, 'k', (uint8_t)t, 0, 0, 0, 0, 0, 0, 0, 0};
        hp_amqp_bytes_t b = at_guard(tv, 3);
        hp_amqp_iter_t it = hp_amqp_table_iter(b);
        hp_amqp_bytes_t key;
        hp_amqp_value_t v;
        int r = hp_amqp_table_next(&it, &key, &v);
        if (t == 'V')
            assert_int_equal(r, 1);
        else
            assert_int_equal(r, -EPROTO); /* unknown, or known and truncated */
        if (known_type(t))
            continue;
        unknown++;
        b = at_guard(tv, sizeof(tv));
        assert_int_equal(hp_amqp_table_validate(b), -EPROTO);
        b = at_guard(tv + 2, sizeof(tv) - 2);
        assert_int_equal(hp_amqp_array_validate(b), -EPROTO);
    }
    assert_int_equal(unknown, 256 - 17);
}

static void test_validate_malformed(void **state)
{
    (void)state;
    hp_amqp_bytes_t b, key;
    hp_amqp_value_t v;
    hp_amqp_iter_t it;

    /* An empty key, at the top and inside a nested table. */
    b = at_guard(BYTES(0, 'V'));
    assert_int_equal(hp_amqp_table_validate(b), -EPROTO);
    b = at_guard(BYTES(0, 'I', 0, 0, 0, 1));
    assert_int_equal(hp_amqp_table_validate(b), -EPROTO);
    b = at_guard(BYTES(1, 'k', 'F', 0, 0, 0, 2, 0, 'V'));
    it = hp_amqp_table_iter(b);
    assert_int_equal(hp_amqp_table_next(&it, &key, &v), 1); /* not looked into */
    assert_int_equal(hp_amqp_table_validate(b), -EPROTO);

    /* An inner length past the end of the outer body, by one and by far
     * (a length near 4 GiB must not wrap anything). */
    b = at_guard(BYTES(1, 'k', 'F', 0, 0, 0, 4, 1, 'a', 'V'));
    assert_int_equal(hp_amqp_table_validate(b), -EPROTO);
    b = at_guard(BYTES(1, 'k', 'A', 0, 0, 0, 2, 'V'));
    assert_int_equal(hp_amqp_table_validate(b), -EPROTO);
    b = at_guard(BYTES(1, 'k', 'S', 0xff, 0xff, 0xff, 0xff, 'x'));
    assert_int_equal(hp_amqp_table_validate(b), -EPROTO);
    b = at_guard(BYTES(1, 'k', 'x', 0xff, 0xff, 0xff, 0xf9, 'x'));
    assert_int_equal(hp_amqp_table_validate(b), -EPROTO);
    b = at_guard(BYTES(1, 'k', 'F', 0xff, 0xff, 0xff, 0xff));
    assert_int_equal(hp_amqp_table_validate(b), -EPROTO);
    /* A key longer than what is left. */
    b = at_guard(BYTES(200, 'a', 'b'));
    assert_int_equal(hp_amqp_table_validate(b), -EPROTO);

    /* Nested bodies whose own contents are bad, their lengths right:
     * the outer iterator hands them out, the validator refuses them. */
    b = at_guard(BYTES(1, 'k', 'F', 0, 0, 0, 3, 1, 'a', 'Z'));
    it = hp_amqp_table_iter(b);
    assert_int_equal(hp_amqp_table_next(&it, &key, &v), 1);
    assert_int_equal(hp_amqp_table_validate(b), -EPROTO);
    b = at_guard(BYTES(1, 'k', 'A', 0, 0, 0, 2, 'I', 0));
    assert_int_equal(hp_amqp_table_validate(b), -EPROTO);
    b = at_guard(BYTES(1, 'k', 'A', 0, 0, 0, 6, 'F', 0, 0, 0, 1, 'V'));
    assert_int_equal(hp_amqp_table_validate(b), -EPROTO);
    /* An array value that is a table body, and the reverse. */
    b = at_guard(BYTES(1, 'k', 'A', 0, 0, 0, 3, 1, 'a', 'V'));
    assert_int_equal(hp_amqp_table_validate(b), -EPROTO);
    b = at_guard(BYTES(1, 'k', 'F', 0, 0, 0, 1, 'V'));
    assert_int_equal(hp_amqp_table_validate(b), -EPROTO);

    /* An iterator stays failed: the same error again, nothing after. */
    b = at_guard(BYTES(1, 'a', 'V', 1, 'b', 'Z', 1, 'c', 'V'));
    it = hp_amqp_table_iter(b);
    assert_int_equal(hp_amqp_table_next(&it, &key, &v), 1);
    assert_int_equal(hp_amqp_table_next(&it, &key, &v), -EPROTO);
    assert_int_equal(hp_amqp_table_next(&it, &key, &v), -EPROTO);
    b = at_guard(BYTES('V', 'Z', 'V'));
    it = hp_amqp_array_iter(b);
    assert_int_equal(hp_amqp_array_next(&it, &v), 1);
    assert_int_equal(hp_amqp_array_next(&it, &v), -EPROTO);
    assert_int_equal(hp_amqp_array_next(&it, &v), -EPROTO);
}

/* A body `levels` deep, built inside out at the end of buf[0, cap): the
 * innermost holds one void value, each outer one a single nested table
 * (or array, when `arrays`) around it. Returns the outermost body. */
static hp_amqp_bytes_t nested(uint8_t *buf, size_t cap, int levels, bool arrays)
{
    size_t start = cap;
    if (!arrays) {
        buf[--start] = 'V';
        buf[--start] = 'v';
        buf[--start] = 1;
    } else {
        buf[--start] = 'V';
    }
    for (int l = 1; l < levels; l++) {
        uint32_t n = (uint32_t)(cap - start);
        assert_true(start >= 7);
        buf[--start] = (uint8_t)n;
        buf[--start] = (uint8_t)(n >> 8);
        buf[--start] = (uint8_t)(n >> 16);
        buf[--start] = (uint8_t)(n >> 24);
        buf[--start] = arrays ? 'A' : 'F';
        if (!arrays) {
            buf[--start] = 'n';
            buf[--start] = 1;
        }
    }
    return (hp_amqp_bytes_t){buf + start, (uint32_t)(cap - start)};
}

static void test_validate_depth(void **state)
{
    (void)state;
    static uint8_t buf[8 * 2000];
    hp_amqp_bytes_t b;
    for (int arrays = 0; arrays < 2; arrays++) {
        int (*val)(hp_amqp_bytes_t) = arrays ? hp_amqp_array_validate : hp_amqp_table_validate;
        for (int l = 1; l <= HP_AMQP_TABLE_MAX_DEPTH; l++) {
            b = nested(buf, sizeof(buf), l, arrays);
            assert_int_equal(val(at_guard(b.ptr, b.len)), 0);
        }
        b = nested(buf, sizeof(buf), HP_AMQP_TABLE_MAX_DEPTH + 1, arrays);
        assert_int_equal(val(at_guard(b.ptr, b.len)), -EPROTO);
        /* Far deeper than any stack the validator could have. */
        b = nested(buf, sizeof(buf), 2000, arrays);
        assert_int_equal(val(b), -EPROTO);
    }
    /* Depth is what the validator polices; the iterator and table_get
     * look at one level only and are fine with it. */
    b = nested(buf, sizeof(buf), 2000, false);
    hp_amqp_value_t v;
    assert_int_equal(hp_amqp_table_get(b, "n", &v), 0);
    assert_int_equal(v.type, 'F');
    assert_int_equal(v.bytes.len, b.len - 7);
}

/* ------------------------------------------------------------------ */
/* Building                                                            */

static void expect_built(hp_amqp_table_builder_t *b, const uint8_t *want, size_t n)
{
    hp_amqp_bytes_t out;
    assert_int_equal(hp_amqp_table_finish(b, &out), 0);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.ptr, want, n);
    assert_ptr_equal(out.ptr, b->buf);
}

static void test_build_bytes(void **state)
{
    (void)state;
    uint8_t buf[256];
    hp_amqp_table_builder_t b;

    hp_amqp_table_init(&b, buf, sizeof(buf));
    hp_amqp_bytes_t out;
    assert_int_equal(hp_amqp_table_finish(&b, &out), 0);
    assert_int_equal(out.len, 0);

    hp_amqp_table_init(&b, buf, sizeof(buf));
    hp_amqp_table_add_int(&b, "a", 1);
    hp_amqp_table_add_bool(&b, "b", true);
    hp_amqp_table_add_str(&b, "s", "hi");
    expect_built(&b, BYTES(1, 'a', 'I', 0, 0, 0, 1, 1, 'b', 't', 1, 1, 's', 'S', 0, 0, 0, 2, 'h',
                           'i'));

    /* A nested table's length is patched on close: 1 + 1 + 1 + 4 = 7. */
    hp_amqp_table_init(&b, buf, sizeof(buf));
    hp_amqp_table_open_table(&b, "t");
    hp_amqp_table_add_int(&b, "x", -2);
    hp_amqp_table_close(&b);
    hp_amqp_table_add_bool(&b, "f", false);
    expect_built(&b, BYTES(1, 't', 'F', 0, 0, 0, 7, 1, 'x', 'I', 0xff, 0xff, 0xff, 0xfe, 1, 'f',
                           't', 0));

    /* An array at the top: no keys, even when one is given. */
    hp_amqp_array_init(&b, buf, sizeof(buf));
    hp_amqp_table_add_bool(&b, NULL, false);
    hp_amqp_table_open_array(&b, "ignored");
    hp_amqp_value_t v = {.type = HP_AMQP_T_I8, .i = -1};
    hp_amqp_table_add(&b, NULL, &v);
    hp_amqp_table_close(&b);
    hp_amqp_table_open_table(&b, NULL);
    hp_amqp_table_close(&b);
    expect_built(&b, BYTES('t', 0, 'A', 0, 0, 0, 2, 'b', 0xff, 'F', 0, 0, 0, 0));

    /* Every fixed-size type, encoded as the decoding vectors above. */
    hp_amqp_table_init(&b, buf, sizeof(buf));
    hp_amqp_value_t vals[] = {
        {.type = 'B', .u = 255},
        {.type = 's', .i = -32768},
        {.type = 'u', .u = 65534},
        {.type = 'I', .i = -2},
        {.type = 'i', .u = 0x12345678},
        {.type = 'T', .u = 1700000000},
        {.type = 'f', .f = 1.5f},
        {.type = 'd', .d = 3.141592653589793},
        {.type = 'D', .dec = {2, 12345}},
        {.type = 'x', .bytes = {"\x00\xff", 2}},
        {.type = 'V'},
    };
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        hp_amqp_table_add(&b, "k", &vals[i]);
    expect_built(&b, BYTES(1, 'k', 'B', 0xff, 1, 'k', 's', 0x80, 0x00, 1, 'k', 'u', 0xff, 0xfe, 1,
                           'k', 'I', 0xff, 0xff, 0xff, 0xfe, 1, 'k', 'i', 0x12, 0x34, 0x56, 0x78,
                           1, 'k', 'T', 0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00, 1, 'k', 'f', 0x3f, 0xc0,
                           0, 0, 1, 'k', 'd', 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18, 1,
                           'k', 'D', 2, 0, 0, 0x30, 0x39, 1, 'k', 'x', 0, 0, 0, 2, 0x00, 0xff, 1,
                           'k', 'V'));
}

/* Builds a table of every type, nested tables and arrays included,
 * into buf; returns the finish result and *out. */
static int build_all(uint8_t *buf, uint32_t cap, hp_amqp_bytes_t *out)
{
    static const uint8_t inner_body[] = {1, 'z', 'u', 0x01, 0x02};
    static const uint8_t arr_body[] = {'b', 0x80, 'V'};
    hp_amqp_table_builder_t b;
    hp_amqp_table_init(&b, buf, cap);
    hp_amqp_table_add_bool(&b, "bool", true);
    hp_amqp_table_add(&b, "i8", &(hp_amqp_value_t){.type = 'b', .i = -128});
    hp_amqp_table_add(&b, "u8", &(hp_amqp_value_t){.type = 'B', .u = 200});
    hp_amqp_table_add(&b, "i16", &(hp_amqp_value_t){.type = 's', .i = -300});
    hp_amqp_table_add(&b, "u16", &(hp_amqp_value_t){.type = 'u', .u = 60000});
    hp_amqp_table_add(&b, "i32", &(hp_amqp_value_t){.type = 'I', .i = INT32_MIN});
    hp_amqp_table_add(&b, "u32", &(hp_amqp_value_t){.type = 'i', .u = UINT32_MAX});
    hp_amqp_table_add_int(&b, "i64", INT64_MIN);
    hp_amqp_table_add(&b, "flt", &(hp_amqp_value_t){.type = 'f', .f = -0.25f});
    hp_amqp_table_add(&b, "dbl", &(hp_amqp_value_t){.type = 'd', .d = 1e300});
    hp_amqp_table_add(&b, "dec", &(hp_amqp_value_t){.type = 'D', .dec = {3, 4000000000u}});
    hp_amqp_table_add_str(&b, "str", "héllo");
    hp_amqp_table_add(&b, "bin", &(hp_amqp_value_t){.type = 'x', .bytes = {"\0\1\2", 3}});
    hp_amqp_table_add(&b, "ts", &(hp_amqp_value_t){.type = 'T', .u = UINT64_MAX - 1});
    hp_amqp_table_add(&b, "void", &(hp_amqp_value_t){.type = 'V'});
    hp_amqp_table_open_table(&b, "tbl");
    {
        hp_amqp_table_add_str(&b, "name", "inner");
        hp_amqp_table_open_array(&b, "list");
        {
            hp_amqp_table_add_int(&b, NULL, 1);
            hp_amqp_table_add_str(&b, NULL, "two");
            hp_amqp_table_open_table(&b, NULL);
            hp_amqp_table_add_bool(&b, "deep", false);
            hp_amqp_table_close(&b);
            hp_amqp_table_open_array(&b, NULL);
            hp_amqp_table_close(&b);
        }
        hp_amqp_table_close(&b);
    }
    hp_amqp_table_close(&b);
    /* Encoded bodies copied in whole. */
    hp_amqp_table_add(&b, "copyF", &(hp_amqp_value_t){.type = 'F', .bytes = {inner_body, 5}});
    hp_amqp_table_add(&b, "copyA", &(hp_amqp_value_t){.type = 'A', .bytes = {arr_body, 3}});
    return hp_amqp_table_finish(&b, out);
}

static void next_is(hp_amqp_iter_t *it, const char *name, uint8_t type, hp_amqp_value_t *v)
{
    hp_amqp_bytes_t key;
    assert_int_equal(hp_amqp_table_next(it, &key, v), 1);
    assert_int_equal(key.len, strlen(name));
    assert_memory_equal(key.ptr, name, key.len);
    assert_int_equal(v->type, type);
}

static void elem_is(hp_amqp_iter_t *it, uint8_t type, hp_amqp_value_t *v)
{
    assert_int_equal(hp_amqp_array_next(it, v), 1);
    assert_int_equal(v->type, type);
}

static void test_build_round_trip(void **state)
{
    (void)state;
    uint8_t buf[1024];
    hp_amqp_bytes_t out;
    assert_int_equal(build_all(buf, sizeof(buf), &out), 0);
    hp_amqp_bytes_t b = at_guard(out.ptr, out.len);
    assert_int_equal(hp_amqp_table_validate(b), 0);

    hp_amqp_iter_t it = hp_amqp_table_iter(b), in, in2;
    hp_amqp_value_t v, w;
    next_is(&it, "bool", 't', &v);
    assert_true(v.b);
    next_is(&it, "i8", 'b', &v);
    assert_int_equal(v.i, -128);
    next_is(&it, "u8", 'B', &v);
    assert_int_equal(v.u, 200);
    next_is(&it, "i16", 's', &v);
    assert_int_equal(v.i, -300);
    next_is(&it, "u16", 'u', &v);
    assert_int_equal(v.u, 60000);
    next_is(&it, "i32", 'I', &v);
    assert_true(v.i == INT32_MIN);
    next_is(&it, "u32", 'i', &v);
    assert_true(v.u == UINT32_MAX);
    next_is(&it, "i64", 'l', &v);
    assert_true(v.i == INT64_MIN);
    next_is(&it, "flt", 'f', &v);
    assert_true(v.f == -0.25f);
    next_is(&it, "dbl", 'd', &v);
    assert_true(v.d == 1e300);
    next_is(&it, "dec", 'D', &v);
    assert_int_equal(v.dec.scale, 3);
    assert_true(v.dec.value == 4000000000u);
    next_is(&it, "str", 'S', &v);
    assert_int_equal(v.bytes.len, strlen("héllo"));
    assert_memory_equal(v.bytes.ptr, "héllo", v.bytes.len);
    next_is(&it, "bin", 'x', &v);
    assert_int_equal(v.bytes.len, 3);
    assert_memory_equal(v.bytes.ptr, "\0\1\2", 3);
    next_is(&it, "ts", 'T', &v);
    assert_true(v.u == UINT64_MAX - 1);
    next_is(&it, "void", 'V', &v);

    next_is(&it, "tbl", 'F', &v);
    in = hp_amqp_table_iter(v.bytes);
    next_is(&in, "name", 'S', &w);
    assert_memory_equal(w.bytes.ptr, "inner", 5);
    next_is(&in, "list", 'A', &w);
    in2 = hp_amqp_array_iter(w.bytes);
    elem_is(&in2, 'I', &w);
    assert_int_equal(w.i, 1);
    elem_is(&in2, 'S', &w);
    assert_memory_equal(w.bytes.ptr, "two", 3);
    elem_is(&in2, 'F', &w);
    hp_amqp_value_t deep;
    assert_int_equal(hp_amqp_table_get(w.bytes, "deep", &deep), 0);
    assert_true(deep.type == 't' && !deep.b);
    elem_is(&in2, 'A', &w);
    assert_int_equal(w.bytes.len, 0);
    assert_int_equal(hp_amqp_array_next(&in2, &w), 0);
    assert_int_equal(hp_amqp_table_next(&in, &(hp_amqp_bytes_t){0}, &w), 0);

    next_is(&it, "copyF", 'F', &v);
    assert_int_equal(v.bytes.len, 5);
    assert_memory_equal(v.bytes.ptr, "\x01zu\x01\x02", 5);
    next_is(&it, "copyA", 'A', &v);
    in = hp_amqp_array_iter(v.bytes);
    elem_is(&in, 'b', &w);
    assert_int_equal(w.i, -128);
    elem_is(&in, 'V', &w);
    assert_int_equal(hp_amqp_array_next(&in, &w), 0);
    assert_int_equal(hp_amqp_table_next(&it, &(hp_amqp_bytes_t){0}, &v), 0);

    /* table_get agrees with the walk. */
    assert_int_equal(hp_amqp_table_get(b, "u16", &v), 0);
    assert_int_equal(v.u, 60000);
    assert_int_equal(hp_amqp_table_get(b, "copyA", &v), 0);
    assert_int_equal(v.type, 'A');
    assert_int_equal(hp_amqp_table_get(b, "name", &v), -ENOENT); /* nested, not at the top */
}

/* ------------------------------------------------------------------ */
/* Builder errors                                                      */

static int finish(hp_amqp_table_builder_t *b)
{
    hp_amqp_bytes_t out = {"x", 1};
    int r = hp_amqp_table_finish(b, &out);
    if (r < 0) {
        assert_null(out.ptr);
        assert_int_equal(out.len, 0);
    }
    return r;
}

static void test_build_nobufs(void **state)
{
    (void)state;
    uint8_t full[1024];
    hp_amqp_bytes_t out;
    assert_int_equal(build_all(full, sizeof(full), &out), 0);
    uint32_t n = out.len;

    /* Every buffer one byte short or more: -ENOBUFS, and nothing written
     * past the end (the canary after cap is intact). */
    enum { CANARY = 32 };
    uint8_t buf[1024 + CANARY];
    for (uint32_t cap = 0; cap < n; cap++) {
        memset(buf, 0xa5, sizeof(buf));
        assert_int_equal(build_all(buf, cap, &out), -ENOBUFS);
        assert_null(out.ptr);
        for (uint32_t i = cap; i < cap + CANARY; i++)
            assert_int_equal(buf[i], 0xa5);
    }
    memset(buf, 0xa5, sizeof(buf));
    assert_int_equal(build_all(buf, n, &out), 0);
    assert_int_equal(out.len, n);
    assert_memory_equal(buf, full, n);
    for (uint32_t i = n; i < n + CANARY; i++)
        assert_int_equal(buf[i], 0xa5);

    /* No buffer at all. */
    hp_amqp_table_builder_t b;
    hp_amqp_table_init(&b, NULL, 0);
    hp_amqp_table_add_bool(&b, "a", true);
    assert_int_equal(finish(&b), -ENOBUFS);
    /* An empty table needs no room. */
    hp_amqp_table_init(&b, NULL, 0);
    assert_int_equal(finish(&b), 0);

    /* A value that does not fit leaves the length where it was. */
    hp_amqp_table_init(&b, buf, 5);
    hp_amqp_table_add_bool(&b, "a", true);
    assert_int_equal(b.len, 4);
    hp_amqp_table_add_bool(&b, "b", true);
    assert_int_equal(b.len, 4);
    assert_int_equal(finish(&b), -ENOBUFS);
}

static void test_build_keys(void **state)
{
    (void)state;
    uint8_t buf[512];
    char key[130];
    hp_amqp_table_builder_t b;

    memset(key, 'k', sizeof(key));
    key[128] = 0;
    hp_amqp_table_init(&b, buf, sizeof(buf));
    hp_amqp_table_add_bool(&b, key, true); /* 128: RabbitMQ's most */
    assert_int_equal(finish(&b), 0);
    assert_int_equal(b.len, 1 + 128 + 2);
    assert_int_equal(buf[0], 128);

    key[128] = 'k';
    key[129] = 0;
    hp_amqp_table_init(&b, buf, sizeof(buf));
    hp_amqp_table_add_bool(&b, key, true); /* 129 */
    assert_int_equal(finish(&b), -EINVAL);
    hp_amqp_table_init(&b, buf, sizeof(buf));
    hp_amqp_table_open_table(&b, key);
    hp_amqp_table_close(&b);
    assert_int_equal(finish(&b), -EINVAL);

    hp_amqp_table_init(&b, buf, sizeof(buf));
    hp_amqp_table_add_bool(&b, "", true);
    assert_int_equal(finish(&b), -EINVAL);
    hp_amqp_table_init(&b, buf, sizeof(buf));
    hp_amqp_table_add_bool(&b, NULL, true);
    assert_int_equal(finish(&b), -EINVAL);
    /* Keys are needed again once a nested array is closed. */
    hp_amqp_table_init(&b, buf, sizeof(buf));
    hp_amqp_table_open_array(&b, "a");
    hp_amqp_table_add_bool(&b, NULL, true);
    hp_amqp_table_close(&b);
    hp_amqp_table_add_bool(&b, NULL, true);
    assert_int_equal(finish(&b), -EINVAL);
    /* ... and not inside an array nested in a table nested in an array. */
    hp_amqp_array_init(&b, buf, sizeof(buf));
    hp_amqp_table_open_table(&b, NULL);
    hp_amqp_table_open_array(&b, "x");
    hp_amqp_table_add_bool(&b, NULL, true);
    hp_amqp_table_close(&b);
    hp_amqp_table_close(&b);
    assert_int_equal(finish(&b), 0);
    assert_int_equal(hp_amqp_array_validate((hp_amqp_bytes_t){buf, b.len}), 0);
}

static void test_build_nesting(void **state)
{
    (void)state;
    uint8_t buf[1024];
    hp_amqp_table_builder_t b;

    /* Close with nothing open, once too often, or never. */
    hp_amqp_table_init(&b, buf, sizeof(buf));
    hp_amqp_table_close(&b);
    assert_int_equal(finish(&b), -EINVAL);
    hp_amqp_table_init(&b, buf, sizeof(buf));
    hp_amqp_table_open_table(&b, "a");
    hp_amqp_table_close(&b);
    hp_amqp_table_close(&b);
    assert_int_equal(finish(&b), -EINVAL);
    hp_amqp_table_init(&b, buf, sizeof(buf));
    hp_amqp_table_open_array(&b, "a");
    assert_int_equal(finish(&b), -EINVAL);

    /* The deepest allowed: the top table and 15 nested ones open (16
     * levels); one more is refused. */
    for (int arrays = 0; arrays < 2; arrays++) {
        hp_amqp_table_init(&b, buf, sizeof(buf));
        for (int l = 1; l < HP_AMQP_TABLE_MAX_DEPTH; l++)
            arrays ? hp_amqp_table_open_array(&b, "n") : hp_amqp_table_open_table(&b, "n");
        hp_amqp_table_add_bool(&b, arrays ? NULL : "x", true);
        for (int l = 1; l < HP_AMQP_TABLE_MAX_DEPTH; l++)
            hp_amqp_table_close(&b);
        hp_amqp_bytes_t out;
        assert_int_equal(hp_amqp_table_finish(&b, &out), 0);
        assert_int_equal(hp_amqp_table_validate(out), 0);

        /* Balanced, but one level too deep. */
        hp_amqp_table_init(&b, buf, sizeof(buf));
        for (int l = 1; l <= HP_AMQP_TABLE_MAX_DEPTH; l++)
            arrays ? hp_amqp_table_open_array(&b, "n") : hp_amqp_table_open_table(&b, "n");
        assert_int_equal(b.depth, HP_AMQP_TABLE_MAX_DEPTH - 1);
        hp_amqp_table_add_bool(&b, arrays ? NULL : "x", true);
        for (int l = 1; l <= HP_AMQP_TABLE_MAX_DEPTH; l++)
            hp_amqp_table_close(&b);
        assert_int_equal(finish(&b), -EINVAL);
    }

    /* A copied body counts its own levels where it lands. */
    static uint8_t deep[256];
    for (int l = 1; l <= 3; l++) {
        hp_amqp_bytes_t body = nested(deep, sizeof(deep), l, false);
        for (int open = 0; open < HP_AMQP_TABLE_MAX_DEPTH; open++) {
            hp_amqp_table_init(&b, buf, sizeof(buf));
            for (int i = 0; i < open; i++)
                hp_amqp_table_open_table(&b, "n");
            hp_amqp_table_add(&b, "c", &(hp_amqp_value_t){.type = 'F', .bytes = body});
            for (int i = 0; i < open; i++)
                hp_amqp_table_close(&b);
            /* levels: the top, the open ones, the copy's own. */
            bool fits = 1 + open + l <= HP_AMQP_TABLE_MAX_DEPTH;
            hp_amqp_bytes_t out = {0};
            int r = hp_amqp_table_finish(&b, &out);
            if (open + 1 >= HP_AMQP_TABLE_MAX_DEPTH) {
                assert_int_equal(r, -EINVAL); /* the opens already fail */
            } else if (fits) {
                assert_int_equal(r, 0);
                assert_int_equal(hp_amqp_table_validate(out), 0);
            } else {
                assert_int_equal(r, -EINVAL);
            }
        }
    }
}

static void test_build_values(void **state)
{
    (void)state;
    uint8_t buf[256];
    hp_amqp_table_builder_t b;
    static const struct {
        hp_amqp_value_t v;
        int want;
    } cases[] = {
        {{.type = 'b', .i = 127}, 0},       {{.type = 'b', .i = 128}, -EINVAL},
        {{.type = 'b', .i = -128}, 0},      {{.type = 'b', .i = -129}, -EINVAL},
        {{.type = 's', .i = 32767}, 0},     {{.type = 's', .i = 32768}, -EINVAL},
        {{.type = 's', .i = -32769}, -EINVAL},
        {{.type = 'I', .i = INT32_MAX}, 0}, {{.type = 'I', .i = (int64_t)INT32_MAX + 1}, -EINVAL},
        {{.type = 'I', .i = (int64_t)INT32_MIN - 1}, -EINVAL},
        {{.type = 'l', .i = INT64_MIN}, 0},
        {{.type = 'B', .u = 255}, 0},       {{.type = 'B', .u = 256}, -EINVAL},
        {{.type = 'u', .u = 65535}, 0},     {{.type = 'u', .u = 65536}, -EINVAL},
        {{.type = 'i', .u = UINT32_MAX}, 0}, {{.type = 'i', .u = (uint64_t)UINT32_MAX + 1}, -EINVAL},
        {{.type = 'T', .u = UINT64_MAX}, 0},
        /* Types outside the set: 0-9-1's own 'U' and 'L', garbage, 0. */
        {{.type = 'U'}, -EINVAL},           {{.type = 'L'}, -EINVAL},
        {{.type = 'Z'}, -EINVAL},           {{.type = 0}, -EINVAL},
        /* Malformed bodies copied in as a table or an array. */
        {{.type = 'F', .bytes = {"\x01" "a" "Z", 3}}, -EINVAL},
        {{.type = 'F', .bytes = {"\x00" "V", 2}}, -EINVAL},
        {{.type = 'A', .bytes = {"I\x00", 2}}, -EINVAL},
        {{.type = 'A', .bytes = {"\x01" "a" "V", 3}}, -EINVAL},
        {{.type = 'A', .bytes = {"V", 1}}, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hp_amqp_table_init(&b, buf, sizeof(buf));
        hp_amqp_table_add(&b, "k", &cases[i].v);
        hp_amqp_bytes_t out;
        int r = hp_amqp_table_finish(&b, &out);
        if (r != cases[i].want)
            fail_msg("case %zu (type '%c'): %d, want %d", i, cases[i].v.type, r, cases[i].want);
        if (r == 0) {
            hp_amqp_value_t back;
            assert_int_equal(hp_amqp_table_get(out, "k", &back), 0);
            assert_int_equal(back.type, cases[i].v.type);
            if (strchr("bsIl", back.type))
                assert_true(back.i == cases[i].v.i);
            if (strchr("BuiT", back.type))
                assert_true(back.u == cases[i].v.u);
        }
    }
}

/* The first error is the one reported, and nothing is added after it. */
static void test_build_sticky(void **state)
{
    (void)state;
    uint8_t buf[64];
    hp_amqp_table_builder_t b;

    hp_amqp_table_init(&b, buf, 4);
    hp_amqp_table_add_int(&b, "a", 1); /* 7 bytes: does not fit */
    hp_amqp_table_add_bool(&b, "", true);
    hp_amqp_table_close(&b);
    assert_int_equal(finish(&b), -ENOBUFS);

    hp_amqp_table_init(&b, buf, sizeof(buf));
    hp_amqp_table_add_bool(&b, "a", true);
    hp_amqp_table_close(&b); /* -EINVAL */
    uint32_t len = b.len;
    hp_amqp_table_add_str(&b, "b", "a string far longer than sixty-four bytes, so it overflows");
    hp_amqp_table_add_bool(&b, "c", true);
    hp_amqp_table_open_table(&b, "d");
    assert_int_equal(b.len, len);
    assert_int_equal(b.depth, 0);
    assert_int_equal(finish(&b), -EINVAL);
    assert_int_equal(finish(&b), -EINVAL);

    /* hp_amqp_str: the length of a C string, and NULL as empty. */
    hp_amqp_bytes_t s = hp_amqp_str("abc");
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.ptr, "abc", 3);
    assert_int_equal(hp_amqp_str("").len, 0);
    assert_int_equal(hp_amqp_str(NULL).len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_integers),
        cmocka_unit_test(test_decode_floats),
        cmocka_unit_test(test_decode_strings),
        cmocka_unit_test(test_decode_nested),
        cmocka_unit_test(test_decode_sequence),
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_validate_unknown_types),
        cmocka_unit_test(test_validate_malformed),
        cmocka_unit_test(test_validate_depth),
        cmocka_unit_test(test_build_bytes),
        cmocka_unit_test(test_build_round_trip),
        cmocka_unit_test(test_build_nobufs),
        cmocka_unit_test(test_build_keys),
        cmocka_unit_test(test_build_nesting),
        cmocka_unit_test(test_build_values),
        cmocka_unit_test(test_build_sticky),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
