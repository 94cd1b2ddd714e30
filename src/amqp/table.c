/*
 * table.c - AMQP 0-9-1 field tables and arrays (spec §4.2.5.5, with the
 * errata's type set that RabbitMQ speaks): an iterator that decodes one
 * entry at a time where the bytes lie, a validator, and a builder that
 * writes into the caller's buffer.
 *
 * Central structure: hp_amqp_iter_t, a cursor (p, len, pos) over one
 * table or array body. A nested table or array is handed out whole, as
 * the slice of its body, so the iterator itself never recurses; the
 * validator walks nesting with an explicit stack of at most
 * HP_AMQP_TABLE_MAX_DEPTH cursors, so no input can make it recurse or use
 * more than that fixed stack.
 *
 * Invariants: an iterator never reads at or past p + len (every read goes
 * through the bounds-checked reader of wire_int.h); once it has returned
 * -EPROTO it stays there (pos is parked past len); the builder's len never
 * exceeds cap, its first error sticks, and when finish returns 0 the body
 * it hands back passes hp_amqp_table_validate (or array_validate).
 */
#include "hotpath/amqp_table.h"

#include "wire_int.h"

#include <errno.h>
#include <string.h>

/* RabbitMQ refuses longer field names; the spec's field-name rule says the
 * same (at most 128 characters). Decoding accepts what a shortstr holds. */
#define KEY_MAX 128

/* pos of an iterator that has met malformed bytes: past any len. */
#define POS_BAD UINT32_MAX

hp_amqp_bytes_t hp_amqp_str(const char *s)
{
    if (!s)
        return (hp_amqp_bytes_t){NULL, 0};
    return (hp_amqp_bytes_t){s, (uint32_t)strlen(s)};
}

/* ------------------------------------------------------------------ */
/* Decoding                                                            */

hp_amqp_iter_t hp_amqp_table_iter(hp_amqp_bytes_t table)
{
    return (hp_amqp_iter_t){.p = table.ptr, .len = table.len, .pos = 0};
}

hp_amqp_iter_t hp_amqp_array_iter(hp_amqp_bytes_t array)
{
    return (hp_amqp_iter_t){.p = array.ptr, .len = array.len, .pos = 0};
}

/* Reads the value of type `type` at the reader into *v. Returns 0, or
 * -EPROTO for an unknown type octet or a value cut short (the reader's
 * sticky `bad` says which reads fell off the end). */
static int read_value(hp_amqp_rd_t *r, uint8_t type, hp_amqp_value_t *v)
{
    v->type = type;
    switch (type) {
    case HP_AMQP_T_BOOL:
        /* Writers send 0 or 1; any other octet reads as true, as the
         * mainstream clients read it. */
        v->b = hp_amqp_rd_u8(r) != 0;
        break;
    case HP_AMQP_T_I8:
        v->i = (int8_t)hp_amqp_rd_u8(r);
        break;
    case HP_AMQP_T_U8:
        v->u = hp_amqp_rd_u8(r);
        break;
    case HP_AMQP_T_I16:
        v->i = (int16_t)hp_amqp_rd_u16(r);
        break;
    case HP_AMQP_T_U16:
        v->u = hp_amqp_rd_u16(r);
        break;
    case HP_AMQP_T_I32:
        v->i = (int32_t)hp_amqp_rd_u32(r);
        break;
    case HP_AMQP_T_U32:
        v->u = hp_amqp_rd_u32(r);
        break;
    case HP_AMQP_T_I64:
        v->i = (int64_t)hp_amqp_rd_u64(r);
        break;
    case HP_AMQP_T_TIMESTAMP:
        v->u = hp_amqp_rd_u64(r);
        break;
    case HP_AMQP_T_FLOAT:
        v->f = hp_amqp_rd_float(r);
        break;
    case HP_AMQP_T_DOUBLE:
        v->d = hp_amqp_rd_double(r);
        break;
    case HP_AMQP_T_DECIMAL:
        v->dec.scale = hp_amqp_rd_u8(r);
        v->dec.value = hp_amqp_rd_u32(r);
        break;
    case HP_AMQP_T_STRING:
    case HP_AMQP_T_BYTES:
    case HP_AMQP_T_ARRAY:
    case HP_AMQP_T_TABLE:
        /* All four are a 32-bit length and that many bytes; a nested
         * table or array is not looked into here (validate does). */
        v->bytes = hp_amqp_rd_longstr(r);
        break;
    case HP_AMQP_T_VOID:
        break;
    default:
        return -EPROTO;
    }
    return r->bad ? -EPROTO : 0;
}

/* The reader over what is left of the iterator's body. */
static hp_amqp_rd_t iter_rd(const hp_amqp_iter_t *it)
{
    return hp_amqp_rd(it->p + it->pos, it->len - it->pos);
}

/* Cold: only malformed input gets here. Parks the iterator so that every
 * later call reports the same error instead of resynchronising on
 * garbage. */
static HP_COLD int iter_fail(hp_amqp_iter_t *it)
{
    it->pos = POS_BAD;
    return -EPROTO;
}

int hp_amqp_table_next(hp_amqp_iter_t *it, hp_amqp_bytes_t *key, hp_amqp_value_t *v)
{
    if (it->pos == it->len)
        return 0;
    if (HP_UNLIKELY(it->pos > it->len))
        return -EPROTO;
    hp_amqp_rd_t r = iter_rd(it);
    hp_amqp_bytes_t k = hp_amqp_rd_shortstr(&r);
    uint8_t type = hp_amqp_rd_u8(&r);
    /* A field name is never empty (spec: field-name starts with a letter,
     * '$' or '#'); other than that, names are not policed on decode. */
    if (HP_UNLIKELY(r.bad || k.len == 0))
        return iter_fail(it);
    if (HP_UNLIKELY(read_value(&r, type, v) < 0))
        return iter_fail(it);
    *key = k;
    it->pos += (uint32_t)r.pos;
    return 1;
}

int hp_amqp_array_next(hp_amqp_iter_t *it, hp_amqp_value_t *v)
{
    if (it->pos == it->len)
        return 0;
    if (HP_UNLIKELY(it->pos > it->len))
        return -EPROTO;
    hp_amqp_rd_t r = iter_rd(it);
    uint8_t type = hp_amqp_rd_u8(&r);
    if (HP_UNLIKELY(r.bad || read_value(&r, type, v) < 0))
        return iter_fail(it);
    it->pos += (uint32_t)r.pos;
    return 1;
}

int hp_amqp_table_get(hp_amqp_bytes_t table, const char *key, hp_amqp_value_t *v)
{
    size_t klen = strlen(key);
    hp_amqp_iter_t it = hp_amqp_table_iter(table);
    hp_amqp_bytes_t k;
    hp_amqp_value_t val;
    int r;
    while ((r = hp_amqp_table_next(&it, &k, &val)) > 0) {
        if (k.len == klen && memcmp(k.ptr, key, klen) == 0) {
            *v = val;
            return 0;
        }
    }
    return r < 0 ? r : -ENOENT;
}

/* One level of the validator's walk: a cursor and what it walks. */
struct level {
    hp_amqp_iter_t it;
    bool array;
};

/* Checks a body (a table's, or an array's when `array`) together with
 * everything nested in it, allowing `levels` levels of nesting counting
 * the body itself (1: nothing nested; at most HP_AMQP_TABLE_MAX_DEPTH).
 * Iterative: the stack is this fixed array, whatever the input. */
static int validate(hp_amqp_bytes_t body, bool array, uint32_t levels)
{
    struct level st[HP_AMQP_TABLE_MAX_DEPTH];
    uint32_t n = 1;
    st[0] = (struct level){hp_amqp_table_iter(body), array};
    while (n > 0) {
        struct level *top = &st[n - 1];
        hp_amqp_bytes_t key;
        hp_amqp_value_t v;
        int r = top->array ? hp_amqp_array_next(&top->it, &v)
                           : hp_amqp_table_next(&top->it, &key, &v);
        if (r < 0)
            return -EPROTO;
        if (r == 0) {
            n--;
            continue;
        }
        if (v.type != HP_AMQP_T_TABLE && v.type != HP_AMQP_T_ARRAY)
            continue;
        if (n >= levels)
            return -EPROTO;
        st[n++] = (struct level){hp_amqp_table_iter(v.bytes), v.type == HP_AMQP_T_ARRAY};
    }
    return 0;
}

int hp_amqp_table_validate(hp_amqp_bytes_t table)
{
    return validate(table, false, HP_AMQP_TABLE_MAX_DEPTH);
}

int hp_amqp_array_validate(hp_amqp_bytes_t array)
{
    return validate(array, true, HP_AMQP_TABLE_MAX_DEPTH);
}

/* ------------------------------------------------------------------ */
/* Building                                                            */

static void builder_init(hp_amqp_table_builder_t *b, void *buf, uint32_t cap, bool array)
{
    memset(b, 0, sizeof(*b));
    b->buf = buf;
    b->cap = cap;
    b->array = array;
}

void hp_amqp_table_init(hp_amqp_table_builder_t *b, void *buf, uint32_t cap)
{
    builder_init(b, buf, cap, false);
}

void hp_amqp_array_init(hp_amqp_table_builder_t *b, void *buf, uint32_t cap)
{
    builder_init(b, buf, cap, true);
}

static HP_COLD void fail(hp_amqp_table_builder_t *b, int err)
{
    if (!b->err)
        b->err = err;
}

/* Whether what is added now goes into an array (no keys). */
static bool in_array(const hp_amqp_table_builder_t *b)
{
    return b->depth ? b->kind[b->depth - 1] == HP_AMQP_T_ARRAY : b->array;
}

/* A writer positioned at the builder's end; builder_commit takes its
 * length back, or records -ENOBUFS and leaves the builder's length where
 * it was (nothing of a value that did not fit counts). */
static hp_amqp_wr_t builder_wr(const hp_amqp_table_builder_t *b)
{
    hp_amqp_wr_t w = hp_amqp_wr(b->buf, b->cap);
    w.len = b->len;
    return w;
}

static void builder_commit(hp_amqp_table_builder_t *b, const hp_amqp_wr_t *w)
{
    if (w->overflow)
        fail(b, -ENOBUFS);
    else
        b->len = (uint32_t)w->len;
}

/* Writes the key (inside a table) and the type octet. Returns 0, or
 * -EINVAL (recorded) for a missing, empty or too long key. */
static int put_head(hp_amqp_table_builder_t *b, hp_amqp_wr_t *w, const char *key, uint8_t type)
{
    if (!in_array(b)) {
        size_t klen = key ? strlen(key) : 0;
        if (klen == 0 || klen > KEY_MAX) {
            fail(b, -EINVAL);
            return -EINVAL;
        }
        hp_amqp_wr_shortstr(w, (hp_amqp_bytes_t){key, (uint32_t)klen});
    }
    hp_amqp_wr_u8(w, type);
    return 0;
}

/* Whether a signed value fits the width of its type. */
static bool fits_signed(uint8_t type, int64_t i)
{
    switch (type) {
    case HP_AMQP_T_I8:
        return i >= INT8_MIN && i <= INT8_MAX;
    case HP_AMQP_T_I16:
        return i >= INT16_MIN && i <= INT16_MAX;
    case HP_AMQP_T_I32:
        return i >= INT32_MIN && i <= INT32_MAX;
    default:
        return true;
    }
}

static bool fits_unsigned(uint8_t type, uint64_t u)
{
    switch (type) {
    case HP_AMQP_T_U8:
        return u <= UINT8_MAX;
    case HP_AMQP_T_U16:
        return u <= UINT16_MAX;
    case HP_AMQP_T_U32:
        return u <= UINT32_MAX;
    default:
        return true;
    }
}

/* Writes v's value (after its type octet). Returns 0 or -EINVAL for an
 * unknown type, an integer out of its type's range, or a copied table or
 * array that is malformed or would nest too deep where it lands. */
static int put_value(const hp_amqp_table_builder_t *b, hp_amqp_wr_t *w, const hp_amqp_value_t *v)
{
    switch (v->type) {
    case HP_AMQP_T_BOOL:
        hp_amqp_wr_u8(w, v->b ? 1 : 0);
        break;
    case HP_AMQP_T_I8:
    case HP_AMQP_T_I16:
    case HP_AMQP_T_I32:
    case HP_AMQP_T_I64:
        if (!fits_signed(v->type, v->i))
            return -EINVAL;
        if (v->type == HP_AMQP_T_I8)
            hp_amqp_wr_u8(w, (uint8_t)v->i);
        else if (v->type == HP_AMQP_T_I16)
            hp_amqp_wr_u16(w, (uint16_t)v->i);
        else if (v->type == HP_AMQP_T_I32)
            hp_amqp_wr_u32(w, (uint32_t)v->i);
        else
            hp_amqp_wr_u64(w, (uint64_t)v->i);
        break;
    case HP_AMQP_T_U8:
    case HP_AMQP_T_U16:
    case HP_AMQP_T_U32:
    case HP_AMQP_T_TIMESTAMP:
        if (!fits_unsigned(v->type, v->u))
            return -EINVAL;
        if (v->type == HP_AMQP_T_U8)
            hp_amqp_wr_u8(w, (uint8_t)v->u);
        else if (v->type == HP_AMQP_T_U16)
            hp_amqp_wr_u16(w, (uint16_t)v->u);
        else if (v->type == HP_AMQP_T_U32)
            hp_amqp_wr_u32(w, (uint32_t)v->u);
        else
            hp_amqp_wr_u64(w, v->u);
        break;
    case HP_AMQP_T_FLOAT:
        hp_amqp_wr_float(w, v->f);
        break;
    case HP_AMQP_T_DOUBLE:
        hp_amqp_wr_double(w, v->d);
        break;
    case HP_AMQP_T_DECIMAL:
        hp_amqp_wr_u8(w, v->dec.scale);
        hp_amqp_wr_u32(w, v->dec.value);
        break;
    case HP_AMQP_T_TABLE:
    case HP_AMQP_T_ARRAY: {
        /* A body copied in must itself be well-formed, and fit the levels
         * left below the ones already open (the top counts as one), so
         * that what finish hands back always validates. */
        uint32_t left = HP_AMQP_TABLE_MAX_DEPTH - 1 - b->depth;
        if (left == 0 || validate(v->bytes, v->type == HP_AMQP_T_ARRAY, left) < 0)
            return -EINVAL;
        hp_amqp_wr_longstr(w, v->bytes);
        break;
    }
    case HP_AMQP_T_STRING:
    case HP_AMQP_T_BYTES:
        hp_amqp_wr_longstr(w, v->bytes);
        break;
    case HP_AMQP_T_VOID:
        break;
    default:
        return -EINVAL;
    }
    return 0;
}

void hp_amqp_table_add(hp_amqp_table_builder_t *b, const char *key, const hp_amqp_value_t *v)
{
    if (b->err)
        return;
    hp_amqp_wr_t w = builder_wr(b);
    if (put_head(b, &w, key, v->type) < 0)
        return;
    if (put_value(b, &w, v) < 0) {
        fail(b, -EINVAL);
        return;
    }
    builder_commit(b, &w);
}

void hp_amqp_table_add_str(hp_amqp_table_builder_t *b, const char *key, const char *s)
{
    hp_amqp_value_t v = {.type = HP_AMQP_T_STRING, .bytes = hp_amqp_str(s)};
    hp_amqp_table_add(b, key, &v);
}

void hp_amqp_table_add_int(hp_amqp_table_builder_t *b, const char *key, int64_t i)
{
    /* The smallest of the two that other clients read back as signed:
     * pika, for one, decodes 'l' as unsigned, but 'I' right. */
    bool small = i >= INT32_MIN && i <= INT32_MAX;
    hp_amqp_value_t v = {.type = small ? HP_AMQP_T_I32 : HP_AMQP_T_I64, .i = i};
    hp_amqp_table_add(b, key, &v);
}

void hp_amqp_table_add_bool(hp_amqp_table_builder_t *b, const char *key, bool val)
{
    hp_amqp_value_t v = {.type = HP_AMQP_T_BOOL, .b = val};
    hp_amqp_table_add(b, key, &v);
}

/* Writes the head of a nested table or array and a length to patch on
 * close, and makes it the level that receives what is added next. */
static void open_nested(hp_amqp_table_builder_t *b, const char *key, uint8_t kind)
{
    if (b->err)
        return;
    /* The top table counts as one level: depth nested ones open make
     * depth + 1 levels, and this one would make depth + 2. */
    if (b->depth + 2 > HP_AMQP_TABLE_MAX_DEPTH) {
        fail(b, -EINVAL);
        return;
    }
    hp_amqp_wr_t w = builder_wr(b);
    if (put_head(b, &w, key, kind) < 0)
        return;
    size_t at = w.len;
    hp_amqp_wr_u32(&w, 0);
    builder_commit(b, &w);
    if (b->err)
        return;
    b->open[b->depth] = (uint32_t)at;
    b->kind[b->depth] = kind;
    b->depth++;
}

void hp_amqp_table_open_table(hp_amqp_table_builder_t *b, const char *key)
{
    open_nested(b, key, HP_AMQP_T_TABLE);
}

void hp_amqp_table_open_array(hp_amqp_table_builder_t *b, const char *key)
{
    open_nested(b, key, HP_AMQP_T_ARRAY);
}

void hp_amqp_table_close(hp_amqp_table_builder_t *b)
{
    if (b->err)
        return;
    if (b->depth == 0) {
        fail(b, -EINVAL);
        return;
    }
    b->depth--;
    uint32_t at = b->open[b->depth];
    /* The length counts the body only, not the 4 length bytes. */
    hp_amqp_wr_t w = hp_amqp_wr(b->buf + at, 4);
    hp_amqp_wr_u32(&w, b->len - at - 4);
}

int hp_amqp_table_finish(hp_amqp_table_builder_t *b, hp_amqp_bytes_t *out)
{
    if (!b->err && b->depth != 0)
        fail(b, -EINVAL);
    if (b->err) {
        *out = (hp_amqp_bytes_t){NULL, 0};
        return b->err;
    }
    *out = (hp_amqp_bytes_t){b->buf, b->len};
    return 0;
}
