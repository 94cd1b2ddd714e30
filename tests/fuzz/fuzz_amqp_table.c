/*
 * fuzz_amqp_table.c - libFuzzer target for AMQP 0-9-1 field tables and
 * arrays (src/amqp/table.c).
 *
 * The input is taken as a table body and, separately, as an array body.
 * Each is walked entry by entry with the iterator, recursing into every
 * nested table and array (the harness' own recursion stops one level
 * past HP_AMQP_TABLE_MAX_DEPTH). Checks:
 *   - every key and value slice the iterator hands out lies inside the
 *     input (ASan also sees the input as an exact-size block);
 *   - an iterator that has failed keeps failing;
 *   - hp_amqp_table_validate (array_validate) returns 0 exactly when the
 *     full walk meets no malformed bytes and no nesting past the limit,
 *     and -EPROTO otherwise;
 *   - hp_amqp_table_get finds the first entry of each top-level key with
 *     the same value, answers -ENOENT for an absent key on a well-formed
 *     table and -EPROTO when the damage comes first;
 *   - a valid body rebuilt with the builder (nested levels opened and
 *     closed, or copied whole) gives the same bytes, unless it holds a
 *     key over 128 bytes (-EINVAL) or a bool octet other than 0 or 1
 *     (written back as 1: same length, still valid).
 */
#include "hotpath/amqp_table.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a walk found. */
struct walk {
    const uint8_t *base; /* the input: every slice must lie in it */
    size_t size;
    bool bad;            /* malformed bytes somewhere */
    bool deep;           /* nesting past HP_AMQP_TABLE_MAX_DEPTH */
    bool long_key;       /* a key the builder refuses (> 128 bytes) */
    bool odd_bool;       /* a bool octet other than 0 and 1 */
};

static void inside(const struct walk *w, hp_amqp_bytes_t s)
{
    const uint8_t *p = s.ptr;
    if (s.len == 0)
        return;
    if (p < w->base || p > w->base + w->size || s.len > (size_t)(w->base + w->size - p))
        abort();
}

/* The bool's octet on the wire: the byte just before where the next
 * entry starts. */
static void note_value(struct walk *w, const hp_amqp_iter_t *it, const hp_amqp_value_t *v)
{
    if (v->type == HP_AMQP_T_BOOL && it->p[it->pos - 1] > 1)
        w->odd_bool = true;
    switch (v->type) {
    case HP_AMQP_T_STRING:
    case HP_AMQP_T_BYTES:
    case HP_AMQP_T_TABLE:
    case HP_AMQP_T_ARRAY:
        inside(w, v->bytes);
        break;
    default:
        break;
    }
}

/* Walks a body at nesting level `level` (1 for the input itself). */
static void walk(struct walk *w, hp_amqp_bytes_t body, bool array, int level)
{
    if (level > HP_AMQP_TABLE_MAX_DEPTH) {
        w->deep = true;
        return;
    }
    hp_amqp_iter_t it = array ? hp_amqp_array_iter(body) : hp_amqp_table_iter(body);
    for (;;) {
        hp_amqp_bytes_t key = {NULL, 0};
        hp_amqp_value_t v;
        int r = array ? hp_amqp_array_next(&it, &v) : hp_amqp_table_next(&it, &key, &v);
        if (r < 0) {
            if (r != -EPROTO)
                abort();
            /* Failed iterators stay failed. */
            r = array ? hp_amqp_array_next(&it, &v) : hp_amqp_table_next(&it, &key, &v);
            if (r != -EPROTO)
                abort();
            w->bad = true;
            return;
        }
        if (r == 0) {
            if (it.pos != it.len)
                abort();
            return;
        }
        if (r != 1 || it.pos > it.len)
            abort();
        if (!array) {
            if (key.len == 0)
                abort();
            inside(w, key);
            if (key.len > 128)
                w->long_key = true;
        }
        note_value(w, &it, &v);
        if (v.type == HP_AMQP_T_TABLE || v.type == HP_AMQP_T_ARRAY)
            walk(w, v.bytes, v.type == HP_AMQP_T_ARRAY, level + 1);
    }
}

static bool same_value(const hp_amqp_value_t *a, const hp_amqp_value_t *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case HP_AMQP_T_BOOL:
        return a->b == b->b;
    case HP_AMQP_T_I8:
    case HP_AMQP_T_I16:
    case HP_AMQP_T_I32:
    case HP_AMQP_T_I64:
        return a->i == b->i;
    case HP_AMQP_T_U8:
    case HP_AMQP_T_U16:
    case HP_AMQP_T_U32:
    case HP_AMQP_T_TIMESTAMP:
        return a->u == b->u;
    case HP_AMQP_T_FLOAT:
        return memcmp(&a->f, &b->f, sizeof(a->f)) == 0;
    case HP_AMQP_T_DOUBLE:
        return memcmp(&a->d, &b->d, sizeof(a->d)) == 0;
    case HP_AMQP_T_DECIMAL:
        return a->dec.scale == b->dec.scale && a->dec.value == b->dec.value;
    case HP_AMQP_T_VOID:
        return true;
    default:
        return a->bytes.ptr == b->bytes.ptr && a->bytes.len == b->bytes.len;
    }
}

/* table_get against a walk of the top level: each key (of the first 64
 * entries) finds the first entry of that name; a key no entry has is
 * -ENOENT on a well-formed top level and -EPROTO when the walk failed. */
enum { GET_MAX = 64 };

static void check_get(hp_amqp_bytes_t table)
{
    hp_amqp_bytes_t keys[GET_MAX];
    hp_amqp_value_t vals[GET_MAX];
    hp_amqp_iter_t it = hp_amqp_table_iter(table);
    int n = 0, r = 0;
    while (n < GET_MAX && (r = hp_amqp_table_next(&it, &keys[n], &vals[n])) > 0)
        n++;
    char name[256];
    for (int i = 0; i < n; i++) {
        memcpy(name, keys[i].ptr, keys[i].len);
        name[keys[i].len] = 0;
        if (strlen(name) != keys[i].len)
            continue; /* a NUL inside: not a C string's key */
        int first = i;
        for (int j = 0; j < i; j++)
            if (keys[j].len == keys[i].len && !memcmp(keys[j].ptr, keys[i].ptr, keys[i].len)) {
                first = j;
                break;
            }
        if (first != i)
            continue;
        hp_amqp_value_t got;
        if (hp_amqp_table_get(table, name, &got) != 0 || !same_value(&got, &vals[i]))
            abort();
    }
    if (n == GET_MAX)
        return;
    /* 200 bytes of 0x7f: absent unless the input spells it out. */
    static char absent[201];
    memset(absent, 0x7f, 200);
    for (int i = 0; i < n; i++)
        if (keys[i].len == 200 && !memcmp(keys[i].ptr, absent, 200))
            return;
    hp_amqp_value_t got;
    if (hp_amqp_table_get(table, absent, &got) != (r < 0 ? -EPROTO : -ENOENT))
        abort();
}

/* Rebuilds a (valid) body with the builder, opening nested levels. */
static void rebuild(hp_amqp_table_builder_t *b, hp_amqp_bytes_t body, bool array, bool copy)
{
    hp_amqp_iter_t it = array ? hp_amqp_array_iter(body) : hp_amqp_table_iter(body);
    hp_amqp_bytes_t key;
    hp_amqp_value_t v;
    char name[256];
    int r;
    while ((r = array ? hp_amqp_array_next(&it, &v) : hp_amqp_table_next(&it, &key, &v)) > 0) {
        const char *k = NULL;
        if (!array) {
            /* A key with a NUL in it cannot be given to the builder: a
             * key of the same length without one stands in for it, the
             * comparison below skips it. */
            memcpy(name, key.ptr, key.len);
            for (uint32_t i = 0; i < key.len; i++)
                if (!name[i])
                    name[i] = '?';
            name[key.len] = 0;
            k = name;
        }
        if (!copy && (v.type == HP_AMQP_T_TABLE || v.type == HP_AMQP_T_ARRAY)) {
            if (v.type == HP_AMQP_T_TABLE)
                hp_amqp_table_open_table(b, k);
            else
                hp_amqp_table_open_array(b, k);
            rebuild(b, v.bytes, v.type == HP_AMQP_T_ARRAY, copy);
            hp_amqp_table_close(b);
        } else {
            hp_amqp_table_add(b, k, &v);
        }
    }
    if (r < 0)
        abort(); /* only valid bodies are rebuilt */
}

/* Replaces each NUL inside a key by '?' the way rebuild does, so the
 * rebuilt bytes can be compared: walks the copy of a valid body, and the
 * nested bodies too when `deep` (those copied whole keep their NULs). */
static void fix_keys(uint8_t *p, hp_amqp_bytes_t body, bool array, bool deep)
{
    hp_amqp_iter_t it = array ? hp_amqp_array_iter(body) : hp_amqp_table_iter(body);
    hp_amqp_bytes_t key;
    hp_amqp_value_t v;
    const uint8_t *base = body.ptr;
    while ((array ? hp_amqp_array_next(&it, &v) : hp_amqp_table_next(&it, &key, &v)) > 0) {
        if (!array)
            for (uint32_t i = 0; i < key.len; i++)
                if (((const uint8_t *)key.ptr)[i] == 0)
                    p[(const uint8_t *)key.ptr - base + i] = '?';
        if (deep && (v.type == HP_AMQP_T_TABLE || v.type == HP_AMQP_T_ARRAY))
            fix_keys(p + ((const uint8_t *)v.bytes.ptr - base), v.bytes,
                     v.type == HP_AMQP_T_ARRAY, deep);
    }
}

static void check_rebuild(const struct walk *w, hp_amqp_bytes_t body, bool array)
{
    uint8_t *want = malloc(body.len + 1);
    uint8_t *buf = malloc(body.len + 1);
    if (!want || !buf)
        abort();
    for (int copy = 0; copy < 2; copy++) {
        if (body.len)
            memcpy(want, body.ptr, body.len);
        fix_keys(want, body, array, !copy);
        hp_amqp_table_builder_t b;
        if (array)
            hp_amqp_array_init(&b, buf, body.len);
        else
            hp_amqp_table_init(&b, buf, body.len);
        rebuild(&b, body, array, copy);
        hp_amqp_bytes_t out;
        int r = hp_amqp_table_finish(&b, &out);
        if (w->long_key) {
            if (r != -EINVAL)
                abort();
            continue;
        }
        if (r != 0 || out.len != body.len)
            abort();
        if (!w->odd_bool && memcmp(out.ptr, want, body.len) != 0)
            abort();
        int again = array ? hp_amqp_array_validate(out) : hp_amqp_table_validate(out);
        if (again != 0)
            abort();
        /* One byte less room: it cannot fit. */
        if (body.len) {
            if (array)
                hp_amqp_array_init(&b, buf, body.len - 1);
            else
                hp_amqp_table_init(&b, buf, body.len - 1);
            rebuild(&b, body, array, copy);
            if (hp_amqp_table_finish(&b, &out) != -ENOBUFS)
                abort();
        }
    }
    free(want);
    free(buf);
}

static void check(const uint8_t *data, size_t size, bool array)
{
    hp_amqp_bytes_t body = {data, (uint32_t)size};
    struct walk w = {.base = data, .size = size};
    walk(&w, body, array, 1);
    int v = array ? hp_amqp_array_validate(body) : hp_amqp_table_validate(body);
    if (v != 0 && v != -EPROTO)
        abort();
    /* validate == 0 exactly when the whole walk succeeded. */
    if ((v == 0) != (!w.bad && !w.deep))
        abort();
    if (!array)
        check_get(body);
    if (v == 0)
        check_rebuild(&w, body, array);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > UINT32_MAX)
        return 0;
    check(data, size, false);
    check(data, size, true);
    return 0;
}
