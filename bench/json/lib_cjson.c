/*
 * lib_cjson.c - cJSON behind json_bench's table of operations.
 * decode cJSON_ParseWithLengthOpts (a length, no NUL needed), encode
 * cJSON_PrintUnformatted, encode into a buffer cJSON_PrintPreallocated,
 * build with the CS calls that reference our constant keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json_bench.h"

static const char *cj_version(void)
{
    return cJSON_Version();
}

static void *cj_decode(const char *buf, size_t len, char *err, size_t errlen)
{
    /* The Opts variant gives the parse end (cJSON_GetErrorPtr is a global);
     * require_null_terminated=0, as cJSON_ParseWithLength passes, accepts
     * bytes after the value, so the end is compared with the length here. */
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!doc) {
        snprintf(err, errlen, "parse error at offset %td", end ? end - buf : (ptrdiff_t)-1);
        return NULL;
    }
    if (end != buf + len) {
        snprintf(err, errlen, "%td bytes after the value", buf + len - end);
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

static char *cj_encode(void *doc, size_t *len)
{
    char *s = cJSON_PrintUnformatted(doc);
    *len = s ? strlen(s) : 0;
    return s;
}

static void cj_release(char *s)
{
    cJSON_free(s);
}

static size_t cj_encode_buf(void *doc, char *buf, size_t cap)
{
    /* cJSON's header asks for 5 bytes more than the text, since its size
     * estimate is not exact; it NUL-terminates. */
    if (cap > INT32_MAX || !cJSON_PrintPreallocated(doc, buf, (int)cap, 0))
        return 0;
    return strlen(buf);
}

static cJSON *cj_obj(const schema_t *s, const char *base);

static cJSON *cj_value(const field_t *f, const char *p)
{
    switch (f->kind) {
    case K_STR:
        return cJSON_CreateString(p);
    case K_INT:
        /* cJSON's numbers are doubles: exact up to 2^53. */
        return cJSON_CreateNumber((double)I64(p));
    case K_REAL:
        return cJSON_CreateNumber(DBL(p));
    case K_BOOL:
        return cJSON_CreateBool(BOOL(p));
    case K_NULL:
        return cJSON_CreateNull();
    case K_OBJ:
        return cj_obj(f->sub, p);
    case K_ARR: {
        cJSON *a = cJSON_CreateArray();
        for (int i = 0; a && i < f->sub->count; i++) {
            cJSON *e = cj_obj(f->sub, p + (size_t)i * f->sub->size);
            if (!e || !cJSON_AddItemToArray(a, e)) {
                cJSON_Delete(e);
                cJSON_Delete(a);
                return NULL;
            }
        }
        return a;
    }
    }
    return NULL;
}

static cJSON *cj_obj(const schema_t *s, const char *base)
{
    cJSON *o = cJSON_CreateObject();
    /* CS: the key is a constant, referenced and not copied. */
    for (int i = 0; o && i < s->n; i++) {
        cJSON *v = cj_value(&s->f[i], base + s->f[i].off);
        if (!v || !cJSON_AddItemToObjectCS(o, s->f[i].key, v)) {
            cJSON_Delete(v);
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

static void *cj_build(const order_t *o)
{
    return cj_obj(&ORDER_S, (const char *)o);
}

static void cj_free(void *doc)
{
    cJSON_Delete(doc);
}

static bool cj_check_obj(const cJSON *o, const schema_t *s, const char *base);

static bool cj_check_value(const cJSON *v, const field_t *f, const char *p)
{
    switch (f->kind) {
    case K_STR:
        if (!cJSON_IsString(v) || strcmp(v->valuestring, p))
            return mismatch(f->key, "string differs");
        return true;
    case K_INT:
        /* Integers beyond 2^53 cannot pass this; ours stay below. */
        return cJSON_IsNumber(v) && v->valuedouble == (double)I64(p) ? true
                                                                     : mismatch(f->key, "integer");
    case K_REAL:
        return cJSON_IsNumber(v) && v->valuedouble == DBL(p) ? true : mismatch(f->key, "real");
    case K_BOOL:
        return cJSON_IsBool(v) && (bool)cJSON_IsTrue(v) == BOOL(p) ? true : mismatch(f->key, "bool");
    case K_NULL:
        return cJSON_IsNull(v) ? true : mismatch(f->key, "not null");
    case K_OBJ:
        return cj_check_obj(v, f->sub, p);
    case K_ARR:
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != f->sub->count)
            return mismatch(f->key, "array length");
        for (int i = 0; i < f->sub->count; i++)
            if (!cj_check_obj(cJSON_GetArrayItem(v, i), f->sub, p + (size_t)i * f->sub->size))
                return false;
        return true;
    }
    return false;
}

static bool cj_check_obj(const cJSON *o, const schema_t *s, const char *base)
{
    if (!cJSON_IsObject(o) || cJSON_GetArraySize(o) != s->n)
        return mismatch(s->f[0].key, "enclosing object's size");
    for (int i = 0; i < s->n; i++) {
        /* The plain cJSON_GetObjectItem compares keys without case. */
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, s->f[i].key);
        if (!v)
            return mismatch(s->f[i].key, "missing");
        if (!cj_check_value(v, &s->f[i], base + s->f[i].off))
            return false;
    }
    return true;
}

static bool cj_check(void *doc, const schema_t *s, const void *base)
{
    return cj_check_obj(doc, s, base);
}

static void cj_set_alloc(malloc_fn_t m, free_fn_t f)
{
    /* Hooks other than malloc/free also turn off cJSON's use of realloc. */
    cJSON_Hooks h = {m, f};
    cJSON_InitHooks(&h);
}

const lib_t LIB_CJSON = {
    .name = "cJSON",
    .version = cj_version,
    .decode = cj_decode,
    .encode = cj_encode,
    .release = cj_release,
    .encode_buf = cj_encode_buf,
    .build = cj_build,
    .free = cj_free,
    .check = cj_check,
    .set_alloc = cj_set_alloc,
};
