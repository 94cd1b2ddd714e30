/*
 * amqp_table.h - AMQP 0-9-1 field tables and arrays: read them where they
 * lie, build them into a buffer of your own.
 *
 * A table travels as a 32-bit length followed by entries (a shortstr key,
 * a type octet, a value); an array as a 32-bit length followed by values.
 * hotpath keeps a table as the bytes after its length (hp_amqp_bytes_t):
 * decoding copies nothing, and iteration decodes one entry at a time. The
 * value types are the ones RabbitMQ and every mainstream client use (the
 * 0-9-1 errata's set), named by their type octet:
 *
 *   't' bool   'b' int8   'B' uint8   's' int16   'u' uint16   'I' int32
 *   'i' uint32 'l' int64  'f' float   'd' double  'D' decimal  'S' string
 *   'x' bytes  'A' array  'T' timestamp 'F' table 'V' void
 *
 * Nothing here allocates. Any thread may use these functions on its own
 * buffers.
 */
#ifndef HOTPATH_AMQP_TABLE_H
#define HOTPATH_AMQP_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"

/* Bytes somewhere else: a string (not NUL-terminated), or an encoded
 * table or array body. Borrowed: valid as long as what it points into. */
typedef struct hp_amqp_bytes {
    const void *ptr;
    uint32_t len;
} hp_amqp_bytes_t;

/* A NUL-terminated string as hp_amqp_bytes_t (strlen; the caller makes
 * sure it fits 32 bits). */
HP_EXPORT hp_amqp_bytes_t hp_amqp_str(const char *s);

/* Value types: the type octet itself. */
enum {
    HP_AMQP_T_BOOL = 't',
    HP_AMQP_T_I8 = 'b',
    HP_AMQP_T_U8 = 'B',
    HP_AMQP_T_I16 = 's',
    HP_AMQP_T_U16 = 'u',
    HP_AMQP_T_I32 = 'I',
    HP_AMQP_T_U32 = 'i',
    HP_AMQP_T_I64 = 'l',
    HP_AMQP_T_FLOAT = 'f',
    HP_AMQP_T_DOUBLE = 'd',
    HP_AMQP_T_DECIMAL = 'D',
    HP_AMQP_T_STRING = 'S',
    HP_AMQP_T_BYTES = 'x',
    HP_AMQP_T_ARRAY = 'A',
    HP_AMQP_T_TIMESTAMP = 'T',
    HP_AMQP_T_TABLE = 'F',
    HP_AMQP_T_VOID = 'V',
};

/* Tables and arrays nest at most this deep, counting the outermost one
 * as the first level: a table holding a table holding an integer is two
 * levels deep. Deeper is rejected as malformed (a peer cannot make the
 * decoder recurse without bound) and refused by the builder. */
#define HP_AMQP_TABLE_MAX_DEPTH 16

/* One decoded value. Which member holds it follows from `type`: b for
 * BOOL (any non-zero octet reads as true); i for the signed integers (I8, I16, I32, I64); u for the unsigned
 * ones (U8, U16, U32) and TIMESTAMP; f for FLOAT; d for DOUBLE; dec for
 * DECIMAL (value / 10^scale); bytes for STRING, BYTES, and the encoded
 * body of a TABLE or an ARRAY (iterate it with hp_amqp_table_iter or
 * hp_amqp_array_iter); nothing for VOID. */
typedef struct hp_amqp_value {
    uint8_t type;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        float f;
        double d;
        struct {
            uint8_t scale;
            uint32_t value;
        } dec;
        hp_amqp_bytes_t bytes;
    };
} hp_amqp_value_t;

/* Walks an encoded table or array body. */
typedef struct hp_amqp_iter {
    const uint8_t *p;
    uint32_t len, pos;
} hp_amqp_iter_t;

HP_EXPORT hp_amqp_iter_t hp_amqp_table_iter(hp_amqp_bytes_t table);
HP_EXPORT hp_amqp_iter_t hp_amqp_array_iter(hp_amqp_bytes_t array);

/* The next entry of a table (its key and value) or value of an array,
 * pointing into the encoded bytes. Returns 1 with *key and *v set, 0 at the
 * end, -EPROTO when the bytes are malformed (truncated, an unknown type
 * octet, an empty key); after -EPROTO every later call returns -EPROTO
 * too. A nested table or array is returned whole, not checked (see
 * hp_amqp_table_validate). Reads nothing outside the iterated bytes. */
HP_EXPORT int hp_amqp_table_next(hp_amqp_iter_t *it, hp_amqp_bytes_t *key, hp_amqp_value_t *v);
HP_EXPORT int hp_amqp_array_next(hp_amqp_iter_t *it, hp_amqp_value_t *v);

/* Finds `key` (NUL-terminated, not NULL) in a table: the first entry of
 * that name. Returns 0 with *v set, -ENOENT, or -EPROTO when the table is
 * malformed before the key. */
HP_EXPORT int hp_amqp_table_get(hp_amqp_bytes_t table, const char *key, hp_amqp_value_t *v);

/* Checks a whole table (or array) down to its deepest nesting: 0, or
 * -EPROTO when anything in it is malformed or nests deeper than
 * HP_AMQP_TABLE_MAX_DEPTH. The method decoder runs this on every table it
 * receives, so a table handed to a callback is always well-formed. */
HP_EXPORT int hp_amqp_table_validate(hp_amqp_bytes_t table);
HP_EXPORT int hp_amqp_array_validate(hp_amqp_bytes_t array);

/* Builds a table (or array) body in the caller's buffer. Errors are
 * sticky and reported by hp_amqp_table_finish: add calls need no checks.
 * Nested tables and arrays are opened and closed in place. */
typedef struct hp_amqp_table_builder {
    uint8_t *buf;
    uint32_t cap, len;
    uint32_t depth;                          /* open nested tables/arrays */
    uint32_t open[HP_AMQP_TABLE_MAX_DEPTH];  /* offset of each one's length */
    uint8_t kind[HP_AMQP_TABLE_MAX_DEPTH];   /* 'F' or 'A' */
    bool array;                              /* building an array at the top */
    int err;                                 /* first error, 0 if none */
} hp_amqp_table_builder_t;

/* Starts a table (or, for hp_amqp_array_init, an array) in buf[0, cap). */
HP_EXPORT void hp_amqp_table_init(hp_amqp_table_builder_t *b, void *buf, uint32_t cap);
HP_EXPORT void hp_amqp_array_init(hp_amqp_table_builder_t *b, void *buf, uint32_t cap);

/* Adds an entry: `key` (NUL-terminated, 1 to 128 bytes, RabbitMQ's
 * limit) with value `v`. Inside an array (at the top or opened with
 * hp_amqp_table_open_array) key is ignored and NULL is fine. An integer
 * must fit its type (an I8 in -128..127, a U16 in 0..65535 ...). A TABLE
 * or ARRAY value is copied from its encoded body (v->bytes), which must
 * be well-formed and fit the nesting levels left where it lands. */
HP_EXPORT void hp_amqp_table_add(hp_amqp_table_builder_t *b, const char *key,
                                 const hp_amqp_value_t *v);

/* Shorthands: a STRING; an integer, as an I32 when it fits (what other
 * clients send, and read back as signed) and an I64 otherwise; a BOOL. */
HP_EXPORT void hp_amqp_table_add_str(hp_amqp_table_builder_t *b, const char *key, const char *s);
HP_EXPORT void hp_amqp_table_add_int(hp_amqp_table_builder_t *b, const char *key, int64_t i);
HP_EXPORT void hp_amqp_table_add_bool(hp_amqp_table_builder_t *b, const char *key, bool v);

/* Opens a nested table or array as the value of `key`; what is added next
 * goes into it until hp_amqp_table_close. */
HP_EXPORT void hp_amqp_table_open_table(hp_amqp_table_builder_t *b, const char *key);
HP_EXPORT void hp_amqp_table_open_array(hp_amqp_table_builder_t *b, const char *key);
HP_EXPORT void hp_amqp_table_close(hp_amqp_table_builder_t *b);

/* The body built so far, in *out (pointing into the buffer; {NULL, 0} on
 * error). Returns 0, -ENOBUFS when it did not fit, -EINVAL for a key
 * missing, empty or too long, an unknown type, an integer out of its
 * type's range, a malformed table or array value, a nesting left open or
 * closed once too often, or nesting deeper than HP_AMQP_TABLE_MAX_DEPTH
 * (so 0 means the body passes hp_amqp_table_validate). The first error is
 * the one reported. */
HP_EXPORT int hp_amqp_table_finish(hp_amqp_table_builder_t *b, hp_amqp_bytes_t *out);

#endif
