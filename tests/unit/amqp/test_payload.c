/*
 * test_payload.c - unit tests for JSON and MessagePack message bodies and
 * their compression (src/amqp/payload.c).
 *
 * JSON: a document with nested objects, arrays, unicode and the 64-bit
 * extremes goes out and comes back (the integers exact on the wire, and
 * refused rather than rounded when read back as doubles); JSON text is
 * checked and sent as it is; malformed text, bytes after the value and a
 * body at a guard page without a NUL. MessagePack: every kind of object
 * round trip, 64-bit integers exact, strings pointing into the body, and
 * the structure check (truncated, reserved byte, counts the body cannot
 * hold, bytes after the object). Compression: the 10 % rule checked
 * against zlib's own size for bodies from random to repetitive, the
 * threshold at 1023/1024 bytes, the caller's properties, a compressor of
 * the caller's; decoding gzip, deflate and brotli, corrupt, truncated and
 * trailing streams, unknown encodings and content types, and bombs: a
 * stream inflating past max_body is refused with the peak of allocated
 * bytes measured below max_body plus the decoder's state. Every
 * constructor goes through an out-of-memory sweep, each step checked for
 * leaks.
 *
 * The allocator: this file defines every function of alloc.h, so the
 * linker takes these instead of src/core/alloc.o. Each block carries its
 * size in front, so the tests read the blocks and bytes live and the peak
 * of bytes live; cJSON allocates through them too (the module sets its
 * hooks). msgpack-c allocates with malloc, which LeakSanitizer watches in
 * the sanitizer build.
 */
#include "hotpath/alloc.h"
#include "hotpath/amqp_payload.h"
#include "hotpath/decompress.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <msgpack.h>
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
#include <zlib.h>

#include <cmocka.h>

/* ------------------------------------------------------------------ */
/* The allocator                                                       */

/* In front of every block: its size, in a header that keeps the block
 * aligned for anything (64 bytes, for hp_calloc_aligned). */
#define HDR 64

static uint64_t allocs, live, countdown;
static size_t live_bytes, peak_bytes;
static int sticky;

static bool should_fail(void)
{
    if (countdown == 0)
        return false;
    if (countdown == 1) {
        if (!sticky)
            countdown = 0;
        return true;
    }
    countdown--;
    return false;
}

/* A block of `size` bytes with its header; NULL only when the system
 * has none. Every successful hp_* call counts one allocation, as core's
 * alloc.c counts them (a realloc too). */
static void *grab(size_t size, bool zero)
{
    void *base = NULL;
    if (posix_memalign(&base, HDR, HDR + size) != 0)
        return NULL;
    if (zero)
        memset((char *)base + HDR, 0, size);
    *(size_t *)base = size;
    allocs++;
    live++;
    live_bytes += size;
    if (live_bytes > peak_bytes)
        peak_bytes = live_bytes;
    return (char *)base + HDR;
}

void *hp_malloc(size_t size)
{
    return should_fail() ? NULL : grab(size, false);
}

void *hp_calloc(size_t n, size_t size)
{
    if (should_fail() || (size && n > SIZE_MAX / size))
        return NULL;
    return grab(n * size, true);
}

void *hp_calloc_aligned(size_t size)
{
    return should_fail() ? NULL : grab(size, true);
}

void hp_free(void *p)
{
    if (!p)
        return;
    char *base = (char *)p - HDR;
    live--;
    live_bytes -= *(size_t *)base;
    free(base);
}

/* A new block, then the old one freed: the peak counts both, as a
 * realloc that has to move does. */
void *hp_realloc(void *p, size_t size)
{
    if (should_fail())
        return NULL;
    void *q = grab(size, false);
    if (!q || !p)
        return q;
    size_t old = *(size_t *)((char *)p - HDR);
    memcpy(q, p, old < size ? old : size);
    hp_free(p);
    return q;
}

uint64_t hp_alloc_count(void)
{
    return allocs;
}

void hp_alloc_fail_after(uint64_t n, int s)
{
    sticky = s;
    countdown = n;
}

static void peak_reset(void)
{
    peak_bytes = live_bytes;
}

/* ------------------------------------------------------------------ */
/* Inputs                                                              */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* n bytes of which about `pct` percent are random and the rest a
 * repeated phrase: from incompressible (100) to very compressible (0). */
static uint8_t *mixed(size_t n, unsigned pct)
{
    static const char phrase[] = "{\"sku\":\"A-1000\",\"qty\":1,\"price\":9.99},";
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = rng() % 100 < pct ? (uint8_t)(rng() >> 32) : (uint8_t)phrase[i % (sizeof phrase - 1)];
    return p;
}

/* zlib's gzip of data at level 6, as the codec makes it (compress.h: the
 * same bytes as deflate(Z_FINISH)): the reference for sizes. */
static uint8_t *ref_gzip(const void *data, size_t n, int level, size_t *zn)
{
    z_stream zs = {0};
    assert_int_equal(deflateInit2(&zs, level, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, (uLong)n);
    uint8_t *z = malloc(cap);
    assert_non_null(z);
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)n;
    zs.next_out = z;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *zn = zs.total_out;
    deflateEnd(&zs);
    return z;
}

/* Compresses with the codec in any format, into a malloc'd block. */
static uint8_t *codec_compress(hp_compress_algo_t algo, const void *data, size_t n, size_t *zn)
{
    hp_compress_t *c;
    assert_int_equal(hp_compress_new(&c, &(hp_compress_opts_t){.algo = algo, .level = 5}), 0);
    size_t cap = n + n / 2 + 1024;
    uint8_t *z = malloc(cap);
    assert_non_null(z);
    hp_compress_io_t io = {.next_in = data, .avail_in = n, .next_out = z, .avail_out = cap};
    assert_int_equal(hp_compress_finish(c, &io), 0);
    *zn = cap - io.avail_out;
    hp_compress_free(c);
    return z;
}

static hp_amqp_props_t props_of(const char *ctype, const char *cenc)
{
    hp_amqp_props_t p = {0};
    if (ctype) {
        p.flags |= HP_AMQP_PROP_CONTENT_TYPE;
        p.content_type = hp_amqp_str(ctype);
    }
    if (cenc) {
        p.flags |= HP_AMQP_PROP_CONTENT_ENCODING;
        p.content_encoding = hp_amqp_str(cenc);
    }
    return p;
}

static bool bytes_are(hp_amqp_bytes_t b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.ptr, s, b.len) == 0;
}

/* Whether the text of a body contains s. */
static bool body_has(const hp_amqp_body_t *b, const char *s)
{
    return memmem(b->ptr, b->len, s, strlen(s)) != NULL;
}

/* Bytes at the edge of a PROT_NONE page: a read past them faults. */
static uint8_t *guard;
static size_t page;

static int group_setup(void **state)
{
    (void)state;
    hp_amqp_json_init(); /* documents built by the tests are counted too */
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

static const void *at_guard(const void *p, size_t n)
{
    assert_true(n <= page);
    uint8_t *at = guard + page - n;
    memcpy(at, p, n);
    return at;
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */

/* A document with what an order event has: nested objects, an array of
 * objects, unicode, booleans, null, a float and the 64-bit extremes. */
static cJSON *order_doc(void)
{
    cJSON *d = cJSON_CreateObject();
    assert_non_null(d);
    assert_int_equal(hp_amqp_json_add_int64(d, "max", INT64_MAX), 0);
    assert_int_equal(hp_amqp_json_add_int64(d, "min", INT64_MIN), 0);
    assert_int_equal(hp_amqp_json_add_int64(d, "id", 9007199254740993), 0); /* 2^53 + 1 */
    assert_non_null(cJSON_AddStringToObject(d, "name", "Zoë ✓ 日本 😀"));
    assert_non_null(cJSON_AddStringToObject(d, "Name", "another key, other case"));
    assert_non_null(cJSON_AddNumberToObject(d, "total", 1234.5));
    assert_non_null(cJSON_AddTrueToObject(d, "paid"));
    assert_non_null(cJSON_AddNullToObject(d, "note"));
    cJSON *cust = cJSON_AddObjectToObject(d, "customer");
    assert_non_null(cust);
    cJSON *addr = cJSON_AddObjectToObject(cust, "address");
    assert_non_null(addr);
    assert_non_null(cJSON_AddStringToObject(addr, "city", "Zürich"));
    cJSON *items = cJSON_AddArrayToObject(d, "items");
    assert_non_null(items);
    for (int i = 0; i < 3; i++) {
        cJSON *it = cJSON_CreateObject();
        assert_non_null(it);
        assert_non_null(cJSON_AddNumberToObject(it, "qty", i + 1));
        assert_true(cJSON_AddItemToArray(items, it));
    }
    cJSON *ids = cJSON_AddArrayToObject(d, "ids");
    assert_non_null(ids);
    assert_int_equal(hp_amqp_json_add_int64(ids, NULL, INT64_MIN), 0);
    assert_int_equal(hp_amqp_json_add_int64(ids, NULL, -1), 0);
    return d;
}

static void test_json_round_trip(void **state)
{
    (void)state;
    uint64_t blocks = live;
    cJSON *doc = order_doc();
    hp_amqp_props_t props = {.flags = HP_AMQP_PROP_DELIVERY_MODE, .delivery_mode = 2};
    hp_amqp_body_t body;
    assert_int_equal(hp_amqp_payload_json(doc, NULL, &props, &body), 0);
    /* Short: sent as text, owned by the body. */
    assert_non_null(body.owned);
    assert_ptr_equal(body.ptr, body.owned);
    assert_true(body.len < 1024);
    assert_int_equal(props.flags, HP_AMQP_PROP_DELIVERY_MODE | HP_AMQP_PROP_CONTENT_TYPE);
    assert_int_equal(props.delivery_mode, 2);
    assert_true(bytes_are(props.content_type, "application/json"));
    /* The 64-bit integers are on the wire digit for digit. */
    assert_true(body_has(&body, "\"max\":9223372036854775807,"));
    assert_true(body_has(&body, "\"min\":-9223372036854775808,"));
    assert_true(body_has(&body, "\"id\":9007199254740993,"));
    assert_true(body_has(&body, "\"ids\":[-9223372036854775808,-1]"));
    /* And read back exactly from the document that was built. */
    int64_t v;
    assert_int_equal(hp_amqp_json_get_int64(cJSON_GetObjectItemCaseSensitive(doc, "max"), &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(hp_amqp_json_get_int64(cJSON_GetObjectItemCaseSensitive(doc, "min"), &v), 0);
    assert_true(v == INT64_MIN);

    hp_amqp_payload_t p;
    assert_int_equal(hp_amqp_payload_decode(&props, body.ptr, body.len, NULL, &p), 0);
    assert_int_equal(p.type, HP_AMQP_PAYLOAD_JSON);
    assert_false(p.inflated);
    assert_ptr_equal(p.ptr, body.ptr);
    cJSON *j = p.json;
    assert_non_null(j);
    /* Case-sensitive lookups find each of the two keys. */
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "name")->valuestring,
                        "Zoë ✓ 日本 😀");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "Name")->valuestring,
                        "another key, other case");
    cJSON *city = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "customer"),
                                         "address"),
        "city");
    assert_string_equal(city->valuestring, "Zürich");
    cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
    assert_int_equal(cJSON_GetArraySize(items), 3);
    assert_int_equal(
        hp_amqp_json_get_int64(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(items, 2), "qty"),
                               &v),
        0);
    assert_int_equal(v, 3);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "paid")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "note")));
    assert_true(cJSON_GetObjectItemCaseSensitive(j, "total")->valuedouble == 1234.5);
    /* Received numbers are doubles: what a double cannot hold exactly is
     * refused, not rounded (the text is still in p.ptr, digit for digit). */
    assert_int_equal(hp_amqp_json_get_int64(cJSON_GetObjectItemCaseSensitive(j, "max"), &v),
                     -ERANGE);
    assert_int_equal(hp_amqp_json_get_int64(cJSON_GetObjectItemCaseSensitive(j, "min"), &v),
                     -ERANGE);
    assert_int_equal(hp_amqp_json_get_int64(cJSON_GetObjectItemCaseSensitive(j, "id"), &v),
                     -ERANGE);
    assert_int_equal(hp_amqp_json_get_int64(cJSON_GetArrayItem(
                                                cJSON_GetObjectItemCaseSensitive(j, "ids"), 1),
                                            &v),
                     0);
    assert_int_equal(v, -1);

    /* The document can be kept past the payload. */
    cJSON *kept = p.json;
    p.json = NULL;
    hp_amqp_payload_free(&p);
    assert_null(p.ptr);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(kept, "items"));
    cJSON_Delete(kept);

    /* The received text sent on as it is keeps every digit. */
    hp_amqp_props_t again = {0};
    hp_amqp_body_t fwd;
    assert_int_equal(hp_amqp_payload_json_text(body.ptr, body.len, NULL, &again, &fwd), 0);
    assert_ptr_equal(fwd.ptr, body.ptr);
    assert_null(fwd.owned);
    assert_true(bytes_are(again.content_type, "application/json"));
    hp_amqp_body_free(&fwd);

    hp_amqp_body_free(&body);
    hp_amqp_body_free(&body); /* twice is fine */
    cJSON_Delete(doc);
    assert_int_equal(live, blocks);
}

static void test_json_get_int64(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        int64_t v;
    } cases[] = {
        {"0", 0, 0},
        {"-0", 0, 0},
        {"42", 0, 42},
        {"-42", 0, -42},
        {"1e3", 0, 1000},
        {"9007199254740991", 0, 9007199254740991},   /* 2^53 - 1 */
        {"-9007199254740991", 0, -9007199254740991},
        {"9007199254740992", -ERANGE, 0},  /* 2^53: 2^53 + 1 reads the same */
        {"-9007199254740992", -ERANGE, 0},
        {"9223372036854775807", -ERANGE, 0},
        {"1.5", -ERANGE, 0},
        {"1e400", -ERANGE, 0},             /* inf */
        {"\"7\"", -EINVAL, 0},
        {"true", -EINVAL, 0},
        {"null", -EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *j = cJSON_Parse(cases[i].text);
        assert_non_null(j);
        int64_t v = 12345;
        int rc = hp_amqp_json_get_int64(j, &v);
        if (rc != cases[i].rc)
            fail_msg("%s: %d, want %d", cases[i].text, rc, cases[i].rc);
        if (rc == 0 && v != cases[i].v)
            fail_msg("%s: %lld", cases[i].text, (long long)v);
        cJSON_Delete(j);
    }
    int64_t v;
    assert_int_equal(hp_amqp_json_get_int64(NULL, &v), -EINVAL);
    /* Raw items: integers exactly, anything else refused. */
    cJSON *raw = cJSON_CreateRaw("-9223372036854775808");
    assert_int_equal(hp_amqp_json_get_int64(raw, &v), 0);
    assert_true(v == INT64_MIN);
    cJSON_Delete(raw);
    const char *bad[] = {"9223372036854775808", "1.0", "", "-", " 1", "1 ", "[1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        raw = cJSON_CreateRaw(bad[i]);
        assert_int_equal(hp_amqp_json_get_int64(raw, &v), -ERANGE);
        cJSON_Delete(raw);
    }
    /* add_int64: the parent must be an object with a key, or an array. */
    cJSON *s = cJSON_CreateString("x"), *o = cJSON_CreateObject();
    assert_int_equal(hp_amqp_json_add_int64(NULL, "k", 1), -EINVAL);
    assert_int_equal(hp_amqp_json_add_int64(s, "k", 1), -EINVAL);
    assert_int_equal(hp_amqp_json_add_int64(o, NULL, 1), -EINVAL);
    assert_null(o->child);
    cJSON_Delete(s);
    cJSON_Delete(o);
}

static void test_json_text(void **state)
{
    (void)state;
    uint64_t blocks = live;
    const char *good[] = {"{}", " \t\r\n[1, 2, {\"a\": null}] \n", "\"just a string\"", "0",
                          "{\"k\":\"\\u00e9\\ud83d\\ude00\"}"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        hp_amqp_props_t props = {0};
        hp_amqp_body_t b;
        assert_int_equal(hp_amqp_payload_json_text(good[i], strlen(good[i]), NULL, &props, &b),
                         0);
        assert_ptr_equal(b.ptr, good[i]);
        assert_int_equal(b.len, strlen(good[i]));
        assert_int_equal(props.flags, HP_AMQP_PROP_CONTENT_TYPE);
        hp_amqp_body_free(&b);
    }
    /* Not JSON: -EINVAL, nothing set. */
    static const struct {
        const char *p;
        size_t n;
    } bad[] = {{"", 0}, {"   ", 3}, {"{", 1}, {"{} x", 4}, {"{}{}", 4}, {"{}\0", 3},
               {"[1,]", 4}, {"{'a':1}", 7}, {"nul", 3}, {"{\"a\":1}", 6}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hp_amqp_props_t props = {0};
        hp_amqp_body_t b = {.ptr = "junk", .len = 4};
        if (hp_amqp_payload_json_text(bad[i].p, bad[i].n, NULL, &props, &b) != -EINVAL)
            fail_msg("bad JSON %zu accepted", i);
        assert_null(b.ptr);
        assert_int_equal(props.flags, 0);
    }
    hp_amqp_props_t props = {0};
    hp_amqp_body_t b;
    assert_int_equal(hp_amqp_payload_json_text(NULL, 0, NULL, &props, &b), -EINVAL);
    assert_int_equal(hp_amqp_payload_json(NULL, NULL, &props, &b), -EINVAL);
    /* An item of no type (made by hand) cannot be printed: not -ENOMEM. */
    cJSON *odd = cJSON_CreateObject(), *inv = cJSON_CreateNull();
    inv->type = cJSON_Invalid;
    cJSON_AddItemToObject(odd, "x", inv);
    assert_int_equal(hp_amqp_payload_json(odd, NULL, &props, &b), -EINVAL);
    assert_null(b.ptr);
    cJSON_Delete(odd);
    assert_int_equal(live, blocks);
}

/* Received JSON is parsed from (pointer, length): no NUL needed, nothing
 * read past the end, and the same rules as for sending. */
static void test_json_decode_edges(void **state)
{
    (void)state;
    uint64_t blocks = live;
    hp_amqp_props_t props = props_of("application/json", NULL);
    const char *text = "{\"a\":[1,2,3],\"b\":\"x\"}";
    hp_amqp_payload_t p;
    const void *at = at_guard(text, strlen(text));
    assert_int_equal(hp_amqp_payload_decode(&props, at, strlen(text), NULL, &p), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p.json, "a")), 3);
    hp_amqp_payload_free(&p);
    /* A number at the very end, where a reader looking for its end would
     * step past the buffer. */
    at = at_guard("12345", 5);
    assert_int_equal(hp_amqp_payload_decode(&props, at, 5, NULL, &p), 0);
    assert_true(p.json->valuedouble == 12345);
    hp_amqp_payload_free(&p);
    /* Every proper prefix of the text is malformed. */
    for (size_t k = 0; k < strlen(text); k++) {
        at = at_guard(text, k);
        assert_int_equal(hp_amqp_payload_decode(&props, at, k, NULL, &p), -EBADMSG);
        assert_null(p.json);
        assert_int_equal(p.type, 0);
    }
    const char *bad[] = {"{} x", "{}}", "[1] [2]", "{\"a\":1,}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(hp_amqp_payload_decode(&props, bad[i], strlen(bad[i]), NULL, &p),
                         -EBADMSG);
    assert_int_equal(hp_amqp_payload_decode(&props, "{}\0", 3, NULL, &p), -EBADMSG);
    assert_int_equal(hp_amqp_payload_decode(&props, " {} \r\n", 6, NULL, &p), 0);
    hp_amqp_payload_free(&p);
    /* Nesting deeper than cJSON's limit (1000) is refused, not recursed. */
    size_t deep = 5000;
    char *nest = malloc(2 * deep);
    assert_non_null(nest);
    memset(nest, '[', deep);
    memset(nest + deep, ']', deep);
    assert_int_equal(hp_amqp_payload_decode(&props, nest, 2 * deep, NULL, &p), -EBADMSG);
    free(nest);
    assert_int_equal(live, blocks);
}

/* ------------------------------------------------------------------ */
/* MessagePack                                                         */

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void test_msgpack_round_trip(void **state)
{
    (void)state;
    uint64_t blocks = live;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 8);
    pack_str(&pk, "max");
    msgpack_pack_int64(&pk, INT64_MAX);
    pack_str(&pk, "min");
    msgpack_pack_int64(&pk, INT64_MIN);
    pack_str(&pk, "umax");
    msgpack_pack_uint64(&pk, UINT64_MAX);
    pack_str(&pk, "name");
    pack_str(&pk, "Zoë ✓ 😀");
    pack_str(&pk, "list");
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int64(&pk, -1);
    msgpack_pack_double(&pk, 2.5);
    msgpack_pack_true(&pk);
    msgpack_pack_nil(&pk);
    pack_str(&pk, "bin");
    msgpack_pack_bin_with_body(&pk, "\x00\x01\xff", 3);
    pack_str(&pk, "nested");
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, "deep");
    msgpack_pack_array(&pk, 0);
    pack_str(&pk, "ext");
    msgpack_pack_ext_with_body(&pk, "abcd", 4, 7);

    hp_amqp_props_t props = {0};
    hp_amqp_body_t body;
    assert_int_equal(hp_amqp_payload_msgpack(sb.data, sb.size, NULL, &props, &body), 0);
    assert_true(bytes_are(props.content_type, "application/msgpack"));
    assert_false(props.flags & HP_AMQP_PROP_CONTENT_ENCODING);
    assert_ptr_equal(body.ptr, sb.data);

    /* Decoded where the bytes lie, at the guard page. */
    const void *at = at_guard(body.ptr, body.len);
    hp_amqp_payload_t p;
    assert_int_equal(hp_amqp_payload_decode(&props, at, body.len, NULL, &p), 0);
    assert_int_equal(p.type, HP_AMQP_PAYLOAD_MSGPACK);
    const msgpack_object *o = p.msgpack;
    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o->via.map.size, 8);
    const msgpack_object_kv *kv = o->via.map.ptr;
    assert_int_equal(kv[0].val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true(kv[0].val.via.u64 == (uint64_t)INT64_MAX);
    assert_int_equal(kv[1].val.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_true(kv[1].val.via.i64 == INT64_MIN);
    assert_true(kv[2].val.via.u64 == UINT64_MAX);
    assert_int_equal(kv[3].val.type, MSGPACK_OBJECT_STR);
    assert_int_equal(kv[3].val.via.str.size, strlen("Zoë ✓ 😀"));
    assert_memory_equal(kv[3].val.via.str.ptr, "Zoë ✓ 😀", strlen("Zoë ✓ 😀"));
    /* Strings point into the body: nothing copied. */
    assert_true((const uint8_t *)kv[3].val.via.str.ptr >= (const uint8_t *)at &&
                (const uint8_t *)kv[3].val.via.str.ptr < (const uint8_t *)at + body.len);
    const msgpack_object *list = &kv[4].val;
    assert_int_equal(list->via.array.size, 4);
    assert_true(list->via.array.ptr[0].via.i64 == -1);
    assert_true(list->via.array.ptr[1].via.f64 == 2.5);
    assert_true(list->via.array.ptr[2].via.boolean);
    assert_int_equal(list->via.array.ptr[3].type, MSGPACK_OBJECT_NIL);
    assert_int_equal(kv[5].val.type, MSGPACK_OBJECT_BIN);
    assert_memory_equal(kv[5].val.via.bin.ptr, "\x00\x01\xff", 3);
    assert_int_equal(kv[6].val.via.map.ptr[0].val.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(kv[7].val.type, MSGPACK_OBJECT_EXT);
    assert_int_equal(kv[7].val.via.ext.type, 7);
    hp_amqp_payload_free(&p);
    hp_amqp_payload_free(&p);

    /* Every proper prefix is truncated, and refused. */
    for (size_t k = 0; k < body.len; k++) {
        at = at_guard(body.ptr, k);
        assert_int_equal(hp_amqp_payload_decode(&props, at, k, NULL, &p), -EBADMSG);
        hp_amqp_body_t b2;
        assert_int_equal(hp_amqp_payload_msgpack(at, k, NULL, &props, &b2), -EINVAL);
    }
    hp_amqp_body_free(&body);
    msgpack_sbuffer_destroy(&sb);
    assert_int_equal(live, blocks);
}

/* Malformed MessagePack, and counts no body of that size can hold: msgpack-
 * c would allocate for them before reading on. */
static void test_msgpack_malformed(void **state)
{
    (void)state;
    uint64_t blocks = live;
    hp_amqp_props_t props = props_of("application/x-msgpack", NULL);
    static const struct {
        const char *p;
        size_t n;
    } bad[] = {
        {"\xc1", 1},                                  /* never used */
        {"\x01\x02", 2},                              /* two objects */
        {"\xdd\xff\xff\xff\xff", 5},                  /* array of 4 G */
        {"\xdf\xff\xff\xff\xff", 5},                  /* map of 4 G */
        {"\xdc\x00\x03\x01\x02", 5},                  /* array of 3 with 2 */
        {"\x93\x01\x02", 3},                          /* fixarray of 3 with 2 */
        {"\x81\x01", 2},                              /* map without a value */
        {"\xdb\xff\xff\xff\xff" "abc", 8},            /* str32 past the end */
        {"\xc6\x00\x00\x00\x04" "abc", 8},            /* bin32 past the end */
        {"\xc9\x00\x00\x00\x02\x01" "a", 7},          /* ext32 past the end */
        {"\xd8\x01" "0123456789abcde", 17},           /* fixext16 one short */
        {"\xcf\x00\x00\x00", 4},                      /* uint64 cut */
        {"\x91\x91\x91\x91", 4},                      /* nesting, never closed */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hp_amqp_payload_t p;
        uint64_t peak0 = (peak_reset(), peak_bytes);
        int rc = hp_amqp_payload_decode(&props, bad[i].p, bad[i].n, NULL, &p);
        if (rc != -EBADMSG)
            fail_msg("case %zu: %d", i, rc);
        assert_true(peak_bytes - peak0 < 4096);
    }
    /* Nesting: msgpack-c holds 32 open arrays or maps on its stack (and
     * calls deeper nesting a failed allocation); the structure check
     * refuses the 33rd as malformed first, and does not recurse. */
    uint8_t deep[200];
    memset(deep, 0x91, sizeof deep);
    deep[sizeof deep - 1] = 0x01;
    hp_amqp_payload_t p;
    for (size_t levels = 1; levels < sizeof deep; levels++) {
        const uint8_t *at = deep + sizeof deep - 1 - levels;
        int rc = hp_amqp_payload_decode(&props, at, levels + 1, NULL, &p);
        if (rc != (levels <= 32 ? 0 : -EBADMSG))
            fail_msg("%zu levels: %d", levels, rc);
        if (rc == 0)
            assert_int_equal(p.msgpack->type, MSGPACK_OBJECT_ARRAY);
        hp_amqp_payload_free(&p);
    }
    /* Containers ending together, then more objects in the outer one:
     * [[[1]], 2] and {"a": [], "b": {}}. */
    const char ok1[] = "\x92\x91\x91\x01\x02", ok2[] = "\x82\xa1" "a" "\x90\xa1" "b" "\x80";
    assert_int_equal(hp_amqp_payload_decode(&props, ok1, sizeof ok1 - 1, NULL, &p), 0);
    assert_int_equal(p.msgpack->via.array.size, 2);
    assert_int_equal(p.msgpack->via.array.ptr[1].via.u64, 2);
    hp_amqp_payload_free(&p);
    assert_int_equal(hp_amqp_payload_decode(&props, ok2, sizeof ok2 - 1, NULL, &p), 0);
    assert_int_equal(p.msgpack->via.map.size, 2);
    hp_amqp_payload_free(&p);
    assert_int_equal(live, blocks);
}

/* ------------------------------------------------------------------ */
/* Compression                                                         */

/* The 10 % rule against zlib's own size for bodies from repetitive to
 * random: compressed exactly when gzip is at most 90 % of the body, and
 * then content_encoding says gzip and the body decodes back. */
static void test_compress_rule(void **state)
{
    (void)state;
    uint64_t blocks = live;
    size_t n = 8192;
    int kept = 0, plain = 0;
    for (unsigned pct = 0; pct <= 100; pct += 2) {
        uint8_t *data = mixed(n, pct);
        size_t zn;
        uint8_t *ref = ref_gzip(data, n, 6, &zn);
        bool pays = zn * 10 <= n * 9;
        hp_amqp_props_t props = props_of("text/plain", "utf-8");
        props.flags |= HP_AMQP_PROP_PRIORITY;
        props.priority = 3;
        hp_amqp_body_t b;
        assert_int_equal(hp_amqp_payload_encode(data, n, NULL, NULL, &props, &b), 0);
        assert_true(bytes_are(props.content_type, "text/plain")); /* NULL: left alone */
        assert_int_equal(props.priority, 3);
        if (pays) {
            kept++;
            assert_int_equal(props.flags, HP_AMQP_PROP_CONTENT_TYPE | HP_AMQP_PROP_PRIORITY |
                                              HP_AMQP_PROP_CONTENT_ENCODING);
            assert_true(bytes_are(props.content_encoding, "gzip"));
            assert_int_equal(b.len, zn);
            assert_memory_equal(b.ptr, ref, zn);
            assert_ptr_equal(b.ptr, b.owned);
            hp_amqp_payload_t p;
            assert_int_equal(hp_amqp_payload_decode(&props, b.ptr, b.len, NULL, &p), 0);
            assert_true(p.inflated);
            assert_int_equal(p.type, HP_AMQP_PAYLOAD_BYTES);
            assert_int_equal(p.len, n);
            assert_memory_equal(p.ptr, data, n);
            hp_amqp_payload_free(&p);
        } else {
            plain++;
            /* Sent as it is: the caller's bytes, no encoding (the one the
             * caller had set is removed: the call owns that field). */
            assert_int_equal(props.flags, HP_AMQP_PROP_CONTENT_TYPE | HP_AMQP_PROP_PRIORITY);
            assert_int_equal(props.content_encoding.len, 0);
            assert_ptr_equal(b.ptr, data);
            assert_null(b.owned);
        }
        hp_amqp_body_free(&b);
        free(ref);
        free(data);
    }
    assert_true(kept > 5 && plain > 5); /* the sweep crossed the line */

    /* min_saving_pct moves the line: 8 KiB of 1-in-4 random bytes saves
     * about half; kept at 40 %, not at 60 %. */
    uint8_t *data = mixed(n, 25);
    size_t zn;
    free(ref_gzip(data, n, 6, &zn));
    assert_true(zn * 100 <= n * 60 && zn * 100 > n * 40);
    hp_amqp_props_t props = {0};
    hp_amqp_body_t b;
    hp_amqp_payload_opts_t o = {.min_saving_pct = 40};
    assert_int_equal(hp_amqp_payload_encode(data, n, "a/b", &o, &props, &b), 0);
    assert_true(props.flags & HP_AMQP_PROP_CONTENT_ENCODING);
    hp_amqp_body_free(&b);
    o.min_saving_pct = 60;
    assert_int_equal(hp_amqp_payload_encode(data, n, "a/b", &o, &props, &b), 0);
    assert_false(props.flags & HP_AMQP_PROP_CONTENT_ENCODING);
    hp_amqp_body_free(&b);
    o.min_saving_pct = 100;
    assert_int_equal(hp_amqp_payload_encode(data, n, "a/b", &o, &props, &b), -EINVAL);
    o = (hp_amqp_payload_opts_t){.level = 10};
    assert_int_equal(hp_amqp_payload_encode(data, n, "a/b", &o, &props, &b), -EINVAL);
    free(data);
    assert_int_equal(live, blocks);
}

/* Below compress_min (1 KiB by default) nothing is compressed, however
 * well it would; at it, it is. */
static void test_compress_threshold(void **state)
{
    (void)state;
    uint64_t blocks = live;
    uint8_t *data = mixed(4096, 0);
    hp_amqp_props_t props = {0};
    hp_amqp_body_t b;
    assert_int_equal(hp_amqp_payload_encode(data, 1023, "a/b", NULL, &props, &b), 0);
    assert_ptr_equal(b.ptr, data);
    assert_false(props.flags & HP_AMQP_PROP_CONTENT_ENCODING);
    hp_amqp_body_free(&b);
    assert_int_equal(hp_amqp_payload_encode(data, 1024, "a/b", NULL, &props, &b), 0);
    assert_true(props.flags & HP_AMQP_PROP_CONTENT_ENCODING);
    assert_true(b.len < 200);
    hp_amqp_body_free(&b);
    /* Another threshold, and none. */
    hp_amqp_payload_opts_t o = {.compress_min = 100};
    assert_int_equal(hp_amqp_payload_encode(data, 100, "a/b", &o, &props, &b), 0);
    assert_true(props.flags & HP_AMQP_PROP_CONTENT_ENCODING);
    hp_amqp_body_free(&b);
    assert_int_equal(hp_amqp_payload_encode(data, 99, "a/b", &o, &props, &b), 0);
    assert_false(props.flags & HP_AMQP_PROP_CONTENT_ENCODING);
    hp_amqp_body_free(&b);
    o.compress_min = HP_AMQP_PAYLOAD_NO_COMPRESS;
    assert_int_equal(hp_amqp_payload_encode(data, 4096, "a/b", &o, &props, &b), 0);
    assert_false(props.flags & HP_AMQP_PROP_CONTENT_ENCODING);
    hp_amqp_body_free(&b);
    /* Empty bodies, even with a threshold of 1. */
    o.compress_min = 1;
    assert_int_equal(hp_amqp_payload_encode(NULL, 0, "a/b", &o, &props, &b), 0);
    assert_int_equal(b.len, 0);
    assert_false(props.flags & HP_AMQP_PROP_CONTENT_ENCODING);
    assert_int_equal(hp_amqp_payload_encode(NULL, 1, "a/b", &o, &props, &b), -EINVAL);

    /* A JSON document above the threshold goes out gzip'd and comes back
     * as the same document. */
    cJSON *doc = cJSON_CreateArray();
    for (int i = 0; i < 200; i++)
        assert_int_equal(hp_amqp_json_add_int64(doc, NULL, INT64_MAX - i), 0);
    props = (hp_amqp_props_t){0};
    assert_int_equal(hp_amqp_payload_json(doc, NULL, &props, &b), 0);
    assert_true(bytes_are(props.content_encoding, "gzip"));
    assert_true(bytes_are(props.content_type, "application/json"));
    hp_amqp_payload_t p;
    assert_int_equal(hp_amqp_payload_decode(&props, b.ptr, b.len, NULL, &p), 0);
    assert_int_equal(p.type, HP_AMQP_PAYLOAD_JSON);
    assert_true(p.inflated);
    assert_int_equal(cJSON_GetArraySize(p.json), 200);
    assert_non_null(memmem(p.ptr, p.len, "9223372036854775807,9223372036854775806,", 40));
    hp_amqp_payload_free(&p);
    hp_amqp_body_free(&b);
    cJSON_Delete(doc);
    free(data);
    assert_int_equal(live, blocks);
}

/* A compressor of the caller's gives the same bytes and saves the zlib
 * state per message. */
static void test_compress_reused(void **state)
{
    (void)state;
    uint64_t blocks = live;
    uint8_t *data = mixed(20000, 10);
    hp_compress_t *c;
    assert_int_equal(hp_compress_new(&c, &(hp_compress_opts_t){.algo = HP_COMPRESS_GZIP,
                                                                .level = 6}),
                     0);
    hp_amqp_payload_opts_t own = {.compressor = c};
    for (int round = 0; round < 3; round++) {
        hp_amqp_props_t p1 = {0}, p2 = {0};
        hp_amqp_body_t b1, b2;
        peak_reset();
        uint64_t a0 = allocs;
        assert_int_equal(hp_amqp_payload_encode(data, 20000, "a/b", NULL, &p1, &b1), 0);
        uint64_t fresh = allocs - a0;
        size_t fresh_peak = peak_bytes;
        peak_reset();
        a0 = allocs;
        assert_int_equal(hp_amqp_payload_encode(data, 20000, "a/b", &own, &p2, &b2), 0);
        assert_int_equal(allocs - a0, 1); /* the output only */
        assert_true(fresh > 1);
        assert_true(peak_bytes + 200000 < fresh_peak); /* no ~270 KB zlib state */
        assert_int_equal(b1.len, b2.len);
        assert_memory_equal(b1.ptr, b2.ptr, b1.len);
        hp_amqp_body_free(&b1);
        hp_amqp_body_free(&b2);
    }
    /* Left reusable after a body that did not pay. */
    uint8_t *noise = mixed(5000, 100);
    hp_amqp_props_t pr = {0};
    hp_amqp_body_t b;
    assert_int_equal(hp_amqp_payload_encode(noise, 5000, "a/b", &own, &pr, &b), 0);
    assert_ptr_equal(b.ptr, noise);
    assert_int_equal(hp_amqp_payload_encode(data, 20000, "a/b", &own, &pr, &b), 0);
    hp_amqp_payload_t p;
    assert_int_equal(hp_amqp_payload_decode(&pr, b.ptr, b.len, NULL, &p), 0);
    assert_memory_equal(p.ptr, data, 20000);
    hp_amqp_payload_free(&p);
    hp_amqp_body_free(&b);
    hp_compress_free(c);
    free(noise);
    free(data);
    assert_int_equal(live, blocks);
}

/* ------------------------------------------------------------------ */
/* Decoding: encodings, types, corrupt streams, bombs                  */

static void test_decode_encodings(void **state)
{
    (void)state;
    uint64_t blocks = live;
    const char *json = "{\"hello\":\"world\",\"n\":[1,2,3]}";
    size_t n = strlen(json);
    static const struct {
        hp_compress_algo_t algo;
        const char *name;
    } enc[] = {{HP_COMPRESS_GZIP, "gzip"}, {HP_COMPRESS_GZIP, " X-GZip "},
               {HP_COMPRESS_ZLIB, "deflate"}, {HP_COMPRESS_BROTLI, "br"}};
    for (size_t i = 0; i < sizeof enc / sizeof enc[0]; i++) {
        size_t zn;
        uint8_t *z = codec_compress(enc[i].algo, json, n, &zn);
        hp_amqp_props_t props = props_of("application/json; charset=utf-8", enc[i].name);
        hp_amqp_payload_t p;
        assert_int_equal(hp_amqp_payload_decode(&props, z, zn, NULL, &p), 0);
        assert_int_equal(p.type, HP_AMQP_PAYLOAD_JSON);
        assert_int_equal(p.len, n);
        assert_memory_equal(p.ptr, json, n);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(p.json, "hello")->valuestring,
                            "world");
        hp_amqp_payload_free(&p);
        free(z);
    }
    /* Names of no compression: the body as it is. */
    const char *plain[] = {"identity", "", "utf-8", "UTF8", "binary", "  "};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        hp_amqp_props_t props = props_of("application/json", plain[i]);
        hp_amqp_payload_t p;
        assert_int_equal(hp_amqp_payload_decode(&props, json, n, NULL, &p), 0);
        assert_false(p.inflated);
        assert_ptr_equal(p.ptr, json);
        hp_amqp_payload_free(&p);
    }
    /* Encodings this module cannot undo. */
    const char *unknown[] = {"zstd", "compress", "gzip, br", "base64"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        hp_amqp_props_t props = props_of("application/json", unknown[i]);
        hp_amqp_payload_t p;
        assert_int_equal(hp_amqp_payload_decode(&props, json, n, NULL, &p), -ENOTSUP);
    }
    /* Content types: what is parsed, and what is handed over as bytes. */
    static const struct {
        const char *ctype;
        int type;
    } types[] = {
        {"application/json", HP_AMQP_PAYLOAD_JSON},
        {"Application/JSON", HP_AMQP_PAYLOAD_JSON},
        {" application/json ; charset=utf-8", HP_AMQP_PAYLOAD_JSON},
        {"text/json", HP_AMQP_PAYLOAD_JSON},
        {"application/vnd.api+json", HP_AMQP_PAYLOAD_JSON},
        {"application/+json", HP_AMQP_PAYLOAD_BYTES},
        {"text/plain", HP_AMQP_PAYLOAD_BYTES},
        {"application/jsonx", HP_AMQP_PAYLOAD_BYTES},
        {"application/octet-stream", HP_AMQP_PAYLOAD_BYTES},
        {"", HP_AMQP_PAYLOAD_BYTES},
        {NULL, HP_AMQP_PAYLOAD_BYTES},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        hp_amqp_props_t props = props_of(types[i].ctype, NULL);
        hp_amqp_payload_t p;
        assert_int_equal(hp_amqp_payload_decode(&props, json, n, NULL, &p), 0);
        if (p.type != types[i].type)
            fail_msg("%s: type %d", types[i].ctype, p.type);
        assert_ptr_equal(p.ptr, json);
        assert_int_equal(p.len, n);
        assert_true((p.json != NULL) == (p.type == HP_AMQP_PAYLOAD_JSON));
        hp_amqp_payload_free(&p);
    }
    /* No properties at all; not even a body. */
    hp_amqp_payload_t p;
    assert_int_equal(hp_amqp_payload_decode(NULL, json, n, NULL, &p), 0);
    assert_int_equal(p.type, HP_AMQP_PAYLOAD_BYTES);
    assert_int_equal(hp_amqp_payload_decode(NULL, NULL, 0, NULL, &p), 0);
    assert_int_equal(p.len, 0);
    hp_amqp_payload_free(NULL);
    assert_int_equal(live, blocks);
}

static void test_decode_corrupt(void **state)
{
    (void)state;
    uint64_t blocks = live;
    uint8_t *data = mixed(5000, 30);
    size_t zn;
    uint8_t *z = ref_gzip(data, 5000, 6, &zn);
    hp_amqp_props_t props = props_of("application/octet-stream", "gzip");
    hp_amqp_payload_t p;
    assert_int_equal(hp_amqp_payload_decode(&props, z, zn, NULL, &p), 0);
    hp_amqp_payload_free(&p);
    /* Every truncation; the empty body too. */
    for (size_t k = 0; k < zn; k++)
        assert_int_equal(hp_amqp_payload_decode(&props, z, k, NULL, &p), -EBADMSG);
    /* Bytes after the stream's end. */
    uint8_t *more = malloc(zn + 1);
    memcpy(more, z, zn);
    more[zn] = 0;
    assert_int_equal(hp_amqp_payload_decode(&props, more, zn + 1, NULL, &p), -EBADMSG);
    /* A flipped bit in the header, the data, the CRC and the length. */
    size_t at[] = {0, 3, zn / 2, zn - 6, zn - 2};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        memcpy(more, z, zn);
        more[at[i]] ^= 0x10;
        assert_int_equal(hp_amqp_payload_decode(&props, more, zn, NULL, &p), -EBADMSG);
        assert_null(p.ptr);
    }
    /* Not gzip at all. */
    assert_int_equal(hp_amqp_payload_decode(&props, data, 5000, NULL, &p), -EBADMSG);
    /* Valid gzip around malformed JSON: the parser's turn to refuse. */
    free(z);
    z = ref_gzip("{\"a\":", 5, 6, &zn);
    props = props_of("application/json", "gzip");
    assert_int_equal(hp_amqp_payload_decode(&props, z, zn, NULL, &p), -EBADMSG);
    free(z);
    free(more);
    free(data);
    assert_int_equal(live, blocks);
}

/* A small body that inflates far past max_body: refused with -EMSGSIZE,
 * and the bytes allocated meanwhile never reach far past max_body (the
 * allocator measures the peak). */
static void test_decode_bomb(void **state)
{
    (void)state;
    uint64_t blocks = live;
    size_t big = 32u << 20; /* 32 MiB of zeros: ~32 KB of gzip */
    uint8_t *zeros = calloc(1, big);
    assert_non_null(zeros);
    size_t zn;
    uint8_t *z = ref_gzip(zeros, big, 9, &zn);
    assert_true(zn < 64 * 1024);
    /* The decompressor's own state: zlib's inflate state and window. */
    size_t state_bytes = 64 * 1024;

    hp_amqp_props_t props = props_of("application/json", "gzip");
    hp_amqp_payload_t p;
    uint64_t limits[] = {1, 4095, 4096, 100000, 1u << 20};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        hp_amqp_payload_opts_t o = {.max_body = limits[i]};
        peak_reset();
        size_t base = live_bytes;
        assert_int_equal(hp_amqp_payload_decode(&props, z, zn, &o, &p), -EMSGSIZE);
        assert_null(p.ptr);
        if (peak_bytes - base > limits[i] + 1 + state_bytes)
            fail_msg("limit %llu: %zu bytes at the peak", (unsigned long long)limits[i],
                     peak_bytes - base);
    }
    /* The trailer names the true size (32 MiB, believable at this ratio):
     * it is a first guess only, and never beyond max_body + 1. */
    assert_true(z[zn - 1] == 0x02 && z[zn - 2] == 0 && z[zn - 3] == 0 && z[zn - 4] == 0);
    /* The default (128 MiB) lets this one through, in one block. */
    peak_reset();
    size_t base = live_bytes;
    props = props_of("application/octet-stream", "gzip");
    assert_int_equal(hp_amqp_payload_decode(&props, z, zn, NULL, &p), 0);
    assert_int_equal(p.len, big);
    assert_true(peak_bytes - base < big + 1 + state_bytes);
    hp_amqp_payload_free(&p);
    free(z);

    /* Exactly at the limit is fine; one byte more is not. */
    z = ref_gzip(zeros, 10000, 6, &zn);
    hp_amqp_payload_opts_t o = {.max_body = 10000};
    assert_int_equal(hp_amqp_payload_decode(&props, z, zn, &o, &p), 0);
    assert_int_equal(p.len, 10000);
    hp_amqp_payload_free(&p);
    o.max_body = 9999;
    assert_int_equal(hp_amqp_payload_decode(&props, z, zn, &o, &p), -EMSGSIZE);
    /* A trailer lying about the size (4 GiB - 1) on a short stream: the
     * guess is capped by deflate's ratio and the checksum catches it. */
    z[zn - 1] = z[zn - 2] = z[zn - 3] = z[zn - 4] = 0xff;
    peak_reset();
    base = live_bytes;
    assert_int_equal(hp_amqp_payload_decode(&props, z, zn, NULL, &p), -EBADMSG);
    assert_true(peak_bytes - base < zn * 1032 + 1 + state_bytes);
    free(z);
    /* Plain bodies longer than max_body are refused unread: 128 MiB + 1
     * of address space never touched. */
    size_t huge = (128u << 20) + 1;
    void *m = mmap(NULL, huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(m != MAP_FAILED);
    props = props_of("application/json", NULL);
    assert_int_equal(hp_amqp_payload_decode(&props, m, huge, NULL, &p), -EMSGSIZE);
    munmap(m, huge);
    free(zeros);
    assert_int_equal(live, blocks);
}

/* ------------------------------------------------------------------ */
/* Out of memory                                                       */

typedef int (*scenario_fn)(void);

static uint8_t *oom_data;
#define OOM_N 6000

static int sc_json_encode(void)
{
    cJSON *doc = cJSON_CreateObject();
    if (!doc)
        return -ENOMEM;
    int rc = hp_amqp_json_add_int64(doc, "id", INT64_MIN);
    cJSON *arr = rc == 0 ? cJSON_AddArrayToObject(doc, "list") : NULL;
    if (rc == 0 && !arr)
        rc = -ENOMEM;
    for (int i = 0; rc == 0 && i < 300; i++)
        rc = hp_amqp_json_add_int64(arr, NULL, i * 1000003);
    hp_amqp_props_t props = {0};
    hp_amqp_body_t b = {0};
    if (rc == 0)
        rc = hp_amqp_payload_json(doc, NULL, &props, &b);
    if (rc == 0) {
        assert_true(props.flags & HP_AMQP_PROP_CONTENT_ENCODING);
    } else {
        assert_null(b.ptr);
        assert_int_equal(props.flags, 0);
    }
    hp_amqp_body_free(&b);
    cJSON_Delete(doc);
    return rc;
}

static int sc_encode_plain(void)
{
    /* Random bytes: compressed in vain, then sent as they are. */
    hp_amqp_props_t props = {0};
    hp_amqp_body_t b;
    int rc = hp_amqp_payload_encode(oom_data + OOM_N, OOM_N, "a/b", NULL, &props, &b);
    if (rc == 0)
        assert_ptr_equal(b.ptr, oom_data + OOM_N);
    hp_amqp_body_free(&b);
    return rc;
}

static uint8_t *oom_gz_json, *oom_gz_msgpack;
static size_t oom_gz_json_n, oom_gz_msgpack_n;

static int sc_decode(const char *ctype, const uint8_t *z, size_t zn)
{
    hp_amqp_props_t props = props_of(ctype, "gzip");
    hp_amqp_payload_t p;
    int rc = hp_amqp_payload_decode(&props, z, zn, NULL, &p);
    if (rc == 0)
        assert_true(p.json || p.msgpack);
    else
        assert_null(p.ptr);
    hp_amqp_payload_free(&p);
    return rc;
}

static int sc_decode_json(void)
{
    return sc_decode("application/json", oom_gz_json, oom_gz_json_n);
}

static int sc_decode_msgpack(void)
{
    return sc_decode("application/msgpack", oom_gz_msgpack, oom_gz_msgpack_n);
}

static int sc_json_text(void)
{
    const char *t = "{\"a\":[1,2,{\"b\":\"c\"}],\"d\":\"e\"}";
    hp_amqp_props_t props = {0};
    hp_amqp_body_t b;
    int rc = hp_amqp_payload_json_text(t, strlen(t), NULL, &props, &b);
    hp_amqp_body_free(&b);
    return rc;
}

static void sweep(const char *name, scenario_fn fn)
{
    uint64_t blocks = live, a0 = allocs;
    assert_int_equal(fn(), 0);
    uint64_t need = allocs - a0;
    assert_true(need > 0);
    assert_int_equal(live, blocks);
    for (int s = 0; s <= 1; s++) {
        uint64_t n;
        for (n = 1;; n++) {
            hp_alloc_fail_after(n, s);
            int rc = fn();
            hp_alloc_fail_after(0, 0);
            if (live != blocks)
                fail_msg("%s: failure %llu (sticky %d) leaks %llu blocks", name,
                         (unsigned long long)n, s, (unsigned long long)(live - blocks));
            if (rc == 0)
                break;
            if (rc != -ENOMEM)
                fail_msg("%s: failure %llu (sticky %d): %d", name, (unsigned long long)n, s, rc);
        }
        assert_int_equal(n, need + 1);
    }
}

static void test_oom(void **state)
{
    (void)state;
    oom_data = malloc(2 * OOM_N);
    assert_non_null(oom_data);
    uint8_t *part = mixed(OOM_N, 5); /* compressible, then random */
    memcpy(oom_data, part, OOM_N);
    free(part);
    part = mixed(OOM_N, 100);
    memcpy(oom_data + OOM_N, part, OOM_N);
    free(part);

    /* Bodies to decode: JSON of 300 objects, and MessagePack, gzip'd. */
    char *text = malloc(40000);
    size_t tn = 0;
    text[tn++] = '[';
    for (int i = 0; i < 300; i++)
        tn += (size_t)sprintf(text + tn, "%s{\"i\":%d,\"s\":\"v%d\"}", i ? "," : "", i, i);
    text[tn++] = ']';
    oom_gz_json = ref_gzip(text, tn, 6, &oom_gz_json_n);
    free(text);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 300);
    for (int i = 0; i < 300; i++) {
        msgpack_pack_map(&pk, 1);
        pack_str(&pk, "i");
        msgpack_pack_int64(&pk, i);
    }
    oom_gz_msgpack = ref_gzip(sb.data, sb.size, 6, &oom_gz_msgpack_n);
    msgpack_sbuffer_destroy(&sb);

    sweep("json encode", sc_json_encode);
    sweep("encode plain", sc_encode_plain);
    sweep("decode json", sc_decode_json);
    sweep("decode msgpack", sc_decode_msgpack);
    sweep("json text", sc_json_text);
    free(oom_gz_json);
    free(oom_gz_msgpack);
    free(oom_data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_round_trip),   cmocka_unit_test(test_json_get_int64),
        cmocka_unit_test(test_json_text),         cmocka_unit_test(test_json_decode_edges),
        cmocka_unit_test(test_msgpack_round_trip), cmocka_unit_test(test_msgpack_malformed),
        cmocka_unit_test(test_compress_rule),     cmocka_unit_test(test_compress_threshold),
        cmocka_unit_test(test_compress_reused),   cmocka_unit_test(test_decode_encodings),
        cmocka_unit_test(test_decode_corrupt),    cmocka_unit_test(test_decode_bomb),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
