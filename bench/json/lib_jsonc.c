/*
 * lib_jsonc.c - json-c behind json_bench's table of operations.
 * decode json_tokener_parse_ex on one tokener kept for the whole run (a
 * length, no NUL needed), encode json_object_to_json_string_length (the
 * text lives in a buffer the document keeps), build with add_ex and
 * constant, new keys. json-c has no allocator hook.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "json_bench.h"

/* One tokener, reset after each parse, as a worker would keep one. */
static struct json_tokener *jc_tok;

/* Compact, and '/' as is: json-c writes "\/" unless told not to. */
#define JC_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static const char *jc_version(void)
{
    return json_c_version();
}

static void *jc_decode(const char *buf, size_t len, char *err, size_t errlen)
{
    if (len > INT32_MAX) {
        snprintf(err, errlen, "too long");
        return NULL;
    }
    json_object *doc = json_tokener_parse_ex(jc_tok, buf, (int)len);
    enum json_tokener_error e = json_tokener_get_error(jc_tok);
    size_t end = json_tokener_get_parse_end(jc_tok);
    json_tokener_reset(jc_tok);
    /* json_tokener_continue: the text ended inside a value; a complete value
     * followed by more bytes is returned, and only the parse end tells. */
    if (e != json_tokener_success) {
        snprintf(err, errlen, "%s at offset %zu", json_tokener_error_desc(e), end);
        return NULL;
    }
    if (end != len) {
        snprintf(err, errlen, "%zu bytes after the value", len - end);
        json_object_put(doc);
        return NULL;
    }
    return doc;
}

static char *jc_encode(void *doc, size_t *len)
{
    /* The text belongs to the document (a buffer it keeps and reuses). */
    return (char *)json_object_to_json_string_length(doc, JC_FLAGS, len);
}

static void jc_release(char *s)
{
    (void)s;
}

static size_t jc_encode_buf(void *doc, char *buf, size_t cap)
{
    /* No such API: the text is made in the document's own buffer and copied. */
    size_t n;
    const char *s = json_object_to_json_string_length(doc, JC_FLAGS, &n);
    if (!s || n > cap)
        return 0;
    memcpy(buf, s, n);
    return n;
}

static json_object *jc_obj(const schema_t *s, const char *base);

static json_object *jc_value(const field_t *f, const char *p, bool *ok)
{
    json_object *v = NULL;
    switch (f->kind) {
    case K_STR:
        v = json_object_new_string(p);
        break;
    case K_INT:
        v = json_object_new_int64(I64(p));
        break;
    case K_REAL:
        v = json_object_new_double(DBL(p));
        break;
    case K_BOOL:
        v = json_object_new_boolean(BOOL(p));
        break;
    case K_NULL:
        return v; /* json-c's null is the NULL pointer */
    case K_OBJ:
        v = jc_obj(f->sub, p);
        break;
    case K_ARR:
        v = json_object_new_array_ext(f->sub->count);
        for (int i = 0; v && i < f->sub->count; i++) {
            json_object *e = jc_obj(f->sub, p + (size_t)i * f->sub->size);
            if (!e || json_object_array_add(v, e)) {
                json_object_put(e);
                json_object_put(v);
                v = NULL;
            }
        }
        break;
    }
    *ok = v != NULL;
    return v;
}

static json_object *jc_obj(const schema_t *s, const char *base)
{
    json_object *o = json_object_new_object();
    /* Constant keys are not copied; KEY_IS_NEW skips the duplicate lookup. */
    for (int i = 0; o && i < s->n; i++) {
        bool ok = true;
        json_object *v = jc_value(&s->f[i], base + s->f[i].off, &ok);
        if (!ok || json_object_object_add_ex(o, s->f[i].key, v,
                                             JSON_C_OBJECT_ADD_KEY_IS_NEW |
                                                 JSON_C_OBJECT_KEY_IS_CONSTANT)) {
            json_object_put(v);
            json_object_put(o);
            return NULL;
        }
    }
    return o;
}

static void *jc_build(const order_t *o)
{
    return jc_obj(&ORDER_S, (const char *)o);
}

static void jc_free(void *doc)
{
    json_object_put(doc);
}

static bool jc_check_obj(json_object *o, const schema_t *s, const char *base);

static bool jc_check_value(json_object *v, const field_t *f, const char *p)
{
    switch (f->kind) {
    case K_STR:
        if (!json_object_is_type(v, json_type_string) ||
            (size_t)json_object_get_string_len(v) != strlen(p) ||
            memcmp(json_object_get_string(v), p, strlen(p)))
            return mismatch(f->key, "string differs");
        return true;
    case K_INT:
        return json_object_is_type(v, json_type_int) && json_object_get_int64(v) == I64(p)
                   ? true
                   : mismatch(f->key, "integer");
    case K_REAL:
        return json_object_is_type(v, json_type_double) && json_object_get_double(v) == DBL(p)
                   ? true
                   : mismatch(f->key, "real");
    case K_BOOL:
        return json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v) == BOOL(p)
                   ? true
                   : mismatch(f->key, "bool");
    case K_NULL:
        return v == NULL ? true : mismatch(f->key, "not null");
    case K_OBJ:
        return jc_check_obj(v, f->sub, p);
    case K_ARR:
        if (!json_object_is_type(v, json_type_array) ||
            json_object_array_length(v) != (size_t)f->sub->count)
            return mismatch(f->key, "array length");
        for (int i = 0; i < f->sub->count; i++)
            if (!jc_check_obj(json_object_array_get_idx(v, (size_t)i), f->sub,
                              p + (size_t)i * f->sub->size))
                return false;
        return true;
    }
    return false;
}

static bool jc_check_obj(json_object *o, const schema_t *s, const char *base)
{
    if (!json_object_is_type(o, json_type_object) || json_object_object_length(o) != s->n)
        return mismatch(s->f[0].key, "enclosing object's size");
    for (int i = 0; i < s->n; i++) {
        json_object *v;
        if (!json_object_object_get_ex(o, s->f[i].key, &v))
            return mismatch(s->f[i].key, "missing");
        if (!jc_check_value(v, &s->f[i], base + s->f[i].off))
            return false;
    }
    return true;
}

static bool jc_check(void *doc, const schema_t *s, const void *base)
{
    return jc_check_obj(doc, s, base);
}

static int jc_init(void)
{
    jc_tok = json_tokener_new();
    return jc_tok ? 0 : -1;
}

static void jc_fini(void)
{
    json_tokener_free(jc_tok);
    jc_tok = NULL;
}

const lib_t LIB_JSONC = {
    .name = "json-c",
    .version = jc_version,
    .init = jc_init,
    .fini = jc_fini,
    .decode = jc_decode,
    .encode = jc_encode,
    .release = jc_release,
    .encode_buf = jc_encode_buf,
    .build = jc_build,
    .free = jc_free,
    .check = jc_check,
};
