/*
 * json_bench.h - what json_bench.c shares with its three library files: the
 * message as C values and its shape, and the table of operations that each
 * library fills in. jansson's and json-c's headers cannot be included in one
 * file (both declare json_object, json_type and json_object_get), so each
 * library lives in its own: lib_jansson.c, lib_jsonc.c, lib_cjson.c.
 */
#ifndef JSON_BENCH_H
#define JSON_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The message as C values: what a publisher holds before encoding. */
typedef struct item {
    char sku[16];
    int64_t qty, price;
    bool gift;
} item_t;

typedef struct customer {
    int64_t id;
    char name[32], email[40], tier[8];
    bool verified;
} customer_t;

typedef struct order {
    char id[40], type[24];
    int64_t version;
    char source[32], created_at[32];
    int64_t timestamp_ms, sequence;
    customer_t customer;
    char currency[4];
    double total;
    item_t items[10];
    bool paid, shipped;
    int64_t priority;
    char channel[8], locale[8], trace_id[40];
    int64_t retries;
    char note[64];
} order_t;

/* The document's shape: each field's key, kind and place in the C struct,
 * so that every library builds and checks exactly the same document.
 * K_NULL has no C value; K_ARR holds sub->count elements of sub. */
enum kind { K_STR, K_INT, K_REAL, K_BOOL, K_NULL, K_OBJ, K_ARR };

typedef struct schema schema_t;
typedef struct field {
    const char *key;
    enum kind kind;
    size_t off;
    const schema_t *sub;
} field_t;

struct schema {
    const field_t *f;
    int n;
    size_t size; /* of one C element, the stride of a K_ARR */
    int count;   /* elements, when this schema is an array's element */
};

#define I64(p) (*(const int64_t *)(p))
#define DBL(p) (*(const double *)(p))
#define BOOL(p) (*(const bool *)(p))

extern const char MSG[];    /* the message as text, compact, no trailing NUL counted */
extern const size_t MSG_LEN;
extern const order_t REF;   /* the same message as C values */
extern const schema_t ORDER_S;

/* Records why a check failed (for the error message); returns false. */
bool mismatch(const char *key, const char *what);

typedef void *(*malloc_fn_t)(size_t);
typedef void (*free_fn_t)(void *);

/* One library. Every document pointer is the library's own type. */
typedef struct lib {
    const char *name;
    const char *(*version)(void);
    /* Set-up before any other call (NULL: none); 0 or -1. */
    int (*init)(void);
    void (*fini)(void);
    /* NULL on failure, with a reason in err. buf is borrowed and has no NUL;
     * bytes after the value are an error. */
    void *(*decode)(const char *buf, size_t len, char *err, size_t errlen);
    /* Compact text and its length; given back with release(). */
    char *(*encode)(void *doc, size_t *len);
    void (*release)(char *s);
    /* Compact text written into buf; its length, or 0 when it did not fit. */
    size_t (*encode_buf)(void *doc, char *buf, size_t cap);
    void *(*build)(const order_t *o);
    void (*free)(void *doc);
    /* Whether doc holds exactly the fields of s with the values at base. */
    bool (*check)(void *doc, const schema_t *s, const void *base);
    /* Routes the library's allocations through m and f (NULL: no hook). */
    void (*set_alloc)(malloc_fn_t m, free_fn_t f);
} lib_t;

extern const lib_t LIB_JANSSON, LIB_JSONC, LIB_CJSON;

#endif
