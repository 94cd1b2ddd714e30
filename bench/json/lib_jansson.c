/*
 * lib_jansson.c - jansson behind json_bench's table of operations.
 * decode json_loadb (a length, no NUL needed), encode json_dumps, encode
 * into a buffer json_dumpb, build with the _new calls that take over the
 * value's reference and _nocheck for our constant, valid UTF-8 keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "json_bench.h"

static const char *jn_version(void)
{
    return jansson_version_str();
}

static void *jn_decode(const char *buf, size_t len, char *err, size_t errlen)
{
    json_error_t e;
    json_t *doc = json_loadb(buf, len, 0, &e);
    if (!doc)
        snprintf(err, errlen, "%s at offset %d", e.text, e.position);
    return doc;
}

static char *jn_encode(void *doc, size_t *len)
{
    char *s = json_dumps(doc, JSON_COMPACT);
    *len = s ? strlen(s) : 0;
    return s;
}

static void jn_release(char *s)
{
    /* json_dumps allocates through jansson's allocator: give it back there. */
    json_malloc_t m;
    json_free_t f;
    json_get_alloc_funcs(&m, &f);
    f(s);
}

static size_t jn_encode_buf(void *doc, char *buf, size_t cap)
{
    /* json_dumpb returns the length the text needs, which is more than cap
     * (and the buffer holds a truncated text) when it does not fit. */
    size_t n = json_dumpb(doc, buf, cap, JSON_COMPACT);
    return n <= cap ? n : 0;
}

static json_t *jn_obj(const schema_t *s, const char *base);

static json_t *jn_value(const field_t *f, const char *p)
{
    switch (f->kind) {
    case K_STR:
        return json_string(p);
    case K_INT:
        return json_integer(I64(p));
    case K_REAL:
        return json_real(DBL(p));
    case K_BOOL:
        return json_boolean(BOOL(p));
    case K_NULL:
        return json_null();
    case K_OBJ:
        return jn_obj(f->sub, p);
    case K_ARR: {
        json_t *a = json_array();
        for (int i = 0; a && i < f->sub->count; i++)
            if (json_array_append_new(a, jn_obj(f->sub, p + (size_t)i * f->sub->size))) {
                json_decref(a);
                return NULL;
            }
        return a;
    }
    }
    return NULL;
}

static json_t *jn_obj(const schema_t *s, const char *base)
{
    json_t *o = json_object();
    /* _nocheck: the keys are our constants, valid UTF-8; _new takes the
     * value's reference, and a NULL value makes the call fail. */
    for (int i = 0; o && i < s->n; i++)
        if (json_object_set_new_nocheck(o, s->f[i].key, jn_value(&s->f[i], base + s->f[i].off))) {
            json_decref(o);
            return NULL;
        }
    return o;
}

static void *jn_build(const order_t *o)
{
    return jn_obj(&ORDER_S, (const char *)o);
}

static void jn_free(void *doc)
{
    json_decref(doc);
}

static bool jn_check_obj(const json_t *o, const schema_t *s, const char *base);

static bool jn_check_value(const json_t *v, const field_t *f, const char *p)
{
    switch (f->kind) {
    case K_STR:
        if (!json_is_string(v) || json_string_length(v) != strlen(p) ||
            memcmp(json_string_value(v), p, strlen(p)))
            return mismatch(f->key, "string differs");
        return true;
    case K_INT:
        return json_is_integer(v) && json_integer_value(v) == I64(p) ? true
                                                                     : mismatch(f->key, "integer");
    case K_REAL:
        return json_is_real(v) && json_real_value(v) == DBL(p) ? true : mismatch(f->key, "real");
    case K_BOOL:
        return json_is_boolean(v) && json_is_true(v) == BOOL(p) ? true : mismatch(f->key, "bool");
    case K_NULL:
        return json_is_null(v) ? true : mismatch(f->key, "not null");
    case K_OBJ:
        return jn_check_obj(v, f->sub, p);
    case K_ARR:
        if (!json_is_array(v) || json_array_size(v) != (size_t)f->sub->count)
            return mismatch(f->key, "array length");
        for (int i = 0; i < f->sub->count; i++)
            if (!jn_check_obj(json_array_get(v, (size_t)i), f->sub, p + (size_t)i * f->sub->size))
                return false;
        return true;
    }
    return false;
}

static bool jn_check_obj(const json_t *o, const schema_t *s, const char *base)
{
    if (!json_is_object(o) || json_object_size(o) != (size_t)s->n)
        return mismatch(s->f[0].key, "enclosing object's size");
    for (int i = 0; i < s->n; i++) {
        const json_t *v = json_object_get(o, s->f[i].key);
        if (!v)
            return mismatch(s->f[i].key, "missing");
        if (!jn_check_value(v, &s->f[i], base + s->f[i].off))
            return false;
    }
    return true;
}

static bool jn_check(void *doc, const schema_t *s, const void *base)
{
    return jn_check_obj(doc, s, base);
}

static void jn_set_alloc(malloc_fn_t m, free_fn_t f)
{
    json_set_alloc_funcs(m, f);
}

const lib_t LIB_JANSSON = {
    .name = "jansson",
    .version = jn_version,
    .decode = jn_decode,
    .encode = jn_encode,
    .release = jn_release,
    .encode_buf = jn_encode_buf,
    .build = jn_build,
    .free = jn_free,
    .check = jn_check,
    .set_alloc = jn_set_alloc,
};
