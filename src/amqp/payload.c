/*
 * payload.c - JSON (cJSON) and MessagePack (msgpack-c) message bodies,
 * gzip-compressed through the codec (src/codec) when that saves enough.
 *
 * Central data structures: hp_amqp_body_t, a body to publish that either
 * borrows the caller's bytes or owns the block it points into, and
 * hp_amqp_payload_t, a decoded body: the bytes (borrowed, or inflated into
 * a block it owns) and the document parsed from them.
 *
 * Invariants: an inflated body never takes more than max_body + 1 bytes
 * (the decompressor is never given more room, and stops with -EMSGSIZE one
 * byte past the limit); a compressed body is kept only when it fits in
 * the room that the saving leaves (the compressor is given no more, so a
 * body that does not pay is never compressed further than that); every
 * failing call leaves its outputs empty and the caller's properties as
 * they were.
 */
#include "hotpath/amqp_payload.h"

#include "hotpath/alloc.h"
#include "hotpath/decompress.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEF_COMPRESS_MIN 1024
#define DEF_SAVING_PCT 10
#define DEF_LEVEL 6
/* The client delivers at most 128 MiB (message.c), so by default nothing
 * it delivers is refused for its size, and a bomb stops at the same mark. */
#define DEF_MAX_BODY (128u << 20)

/* Deflate cannot expand more than 1032:1 (a 258-byte match per 2 bits at
 * best), so a gzip trailer claiming more than that is a lie: it is only
 * used as a first guess of the room, and never beyond this. */
#define DEFLATE_MAX_RATIO 1032

/* Room added to four times the input for a first guess without a size
 * hint; and the least first room, so that a trailer saying 0 does not
 * start the doubling from one byte. */
#define INFLATE_MIN_ROOM 4096
#define INFLATE_LEAST_ROOM 64

/* Options with every zero replaced by its default, checked. */
typedef struct {
    size_t compress_min;
    unsigned saving_pct;
    int level;
    hp_compress_t *compressor;
    uint64_t max_body;
} opts_t;

static int opts_get(const hp_amqp_payload_opts_t *in, opts_t *o)
{
    hp_amqp_payload_opts_t z = {0};
    if (!in)
        in = &z;
    o->compress_min = in->compress_min ? in->compress_min : DEF_COMPRESS_MIN;
    o->saving_pct = in->min_saving_pct ? in->min_saving_pct : DEF_SAVING_PCT;
    o->level = in->level ? in->level : DEF_LEVEL;
    o->compressor = in->compressor;
    o->max_body = in->max_body ? in->max_body : DEF_MAX_BODY;
    if (o->saving_pct > 99 || o->level < 1 || o->level > 9)
        return -EINVAL;
    return 0;
}

/* ------------------------------------------------------------------ */
/* cJSON's hooks                                                       */

/* cJSON reports an allocation failure and a syntax error alike (NULL), so
 * its allocator hook notes failures for the parse that is running on this
 * thread. Per thread, like the parse; reset before each one. */
static _Thread_local bool json_oom;

static void *json_malloc(size_t n)
{
    void *p = hp_malloc(n);
    if (!p)
        json_oom = true;
    return p;
}

static void json_hooks(void)
{
    /* cJSON keeps these in a process global: set once, here, never
     * changed after (pthread_once orders this before any caller's use). */
    cJSON_InitHooks(&(cJSON_Hooks){.malloc_fn = json_malloc, .free_fn = hp_free});
}

void hp_amqp_json_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, json_hooks);
}

/* ------------------------------------------------------------------ */
/* MessagePack structure check                                         */

/* msgpack-c's unpacker keeps open arrays and maps on a fixed stack of
 * MSGPACK_EMBED_STACK_SIZE (32, as libmsgpackc is built), and reports
 * deeper nesting as MSGPACK_UNPACK_NOMEM_ERROR, the code of a failed
 * allocation. */
#define MSGPACK_DEPTH_MAX 32

/* msgpack-c allocates an array's or a map's objects as soon as it reads
 * the header, trusting the count: five bytes (dd ff ff ff ff) make it ask
 * for 4 G objects, ~100 GB. It checks nothing against the bytes left, and
 * its error for nesting too deep is the one for memory. So before
 * unpacking, this walks the structure once, without allocating or
 * recursing, and refuses (as malformed) any count the rest of the body
 * cannot hold, since every object takes at least one byte, so at most
 * `len` objects are ever declared and the unpacker then allocates in
 * proportion to the body; and nesting deeper than the unpacker's stack.
 * It also finds where the one object ends. Returns 0 when data[0, len) is
 * exactly one complete object, -EBADMSG otherwise. */
static int msgpack_check(const uint8_t *p, size_t len)
{
    uint64_t left[MSGPACK_DEPTH_MAX]; /* objects yet to start in each open container */
    uint64_t pending = 0;             /* their sum */
    int depth = 0;
    size_t pos = 0;
    for (;;) {
        if (pos >= len)
            return -EBADMSG;
        if (depth > 0) { /* this object is one of the innermost container's */
            left[depth - 1]--;
            pending--;
        }
        uint8_t b = p[pos++];
        uint64_t skip = 0, more = 0; /* payload bytes; objects it contains */
        size_t nlen = 0;             /* bytes of a length or count field */
        int ext = 0;                 /* an extension's type byte */
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
            ; /* fixint, nil, bool */
        else if (b <= 0x8f)
            more = 2u * (b & 0x0f); /* fixmap: keys and values */
        else if (b <= 0x9f)
            more = b & 0x0f; /* fixarray */
        else if (b <= 0xbf)
            skip = b & 0x1f; /* fixstr */
        else
            switch (b) {
            case 0xc4: case 0xd9: nlen = 1; break; /* bin8, str8 */
            case 0xc5: case 0xda: nlen = 2; break; /* bin16, str16 */
            case 0xc6: case 0xdb: nlen = 4; break; /* bin32, str32 */
            case 0xc7: nlen = 1; ext = 1; break;   /* ext8, 16, 32 */
            case 0xc8: nlen = 2; ext = 1; break;
            case 0xc9: nlen = 4; ext = 1; break;
            case 0xca: skip = 4; break;            /* float32 */
            case 0xcb: skip = 8; break;            /* float64 */
            case 0xcc: case 0xd0: skip = 1; break; /* (u)int8 .. (u)int64 */
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;            /* fixext 1 .. 16, type included */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: case 0xde: nlen = 2; break; /* array16, map16 */
            case 0xdd: case 0xdf: nlen = 4; break; /* array32, map32 */
            default: return -EBADMSG;              /* 0xc1: never used */
            }
        if (nlen) {
            if (len - pos < nlen)
                return -EBADMSG;
            uint64_t n = 0;
            for (size_t i = 0; i < nlen; i++)
                n = n << 8 | p[pos++];
            if (b >= 0xdc)
                more = b >= 0xde ? 2 * n : n;
            else
                skip = n + (uint64_t)ext;
        }
        if (skip > len - pos)
            return -EBADMSG;
        pos += (size_t)skip;
        /* Kept after every object: the objects declared and not yet
         * started fit in the bytes left, one byte each at least. */
        if (pending > len - pos)
            return -EBADMSG;
        if (more) {
            /* An array or map with objects to come: they must fit too,
             * and the unpacker's stack must hold one more level. */
            if (depth == MSGPACK_DEPTH_MAX || more > len - pos - pending)
                return -EBADMSG;
            left[depth++] = more;
            pending += more;
            continue;
        }
        /* A scalar or an empty container ends every open container whose
         * objects have all started. */
        while (depth > 0 && left[depth - 1] == 0)
            depth--;
        if (depth == 0)
            return pos == len ? 0 : -EBADMSG;
    }
}

/* ------------------------------------------------------------------ */
/* Publishing                                                          */

void hp_amqp_body_free(hp_amqp_body_t *body)
{
    if (!body)
        return;
    hp_free(body->owned);
    *body = (hp_amqp_body_t){0};
}

/* The most bytes a compressed body may take to save saving_pct of len,
 * rounded down: saving at least 10 % of 1024 bytes is 921 bytes at most. */
static size_t room_for(size_t len, unsigned saving_pct)
{
    unsigned keep = 100 - saving_pct;
    return len / 100 * keep + len % 100 * keep / 100;
}

/* Compresses data[0, len) into a block of its own if the result fits the
 * room the saving leaves. Returns 0 with *out set to it, 1 when it does
 * not pay (nothing allocated), -ENOMEM. */
static int gzip_body(const void *data, size_t len, const opts_t *o, hp_amqp_body_t *out)
{
    size_t room = room_for(len, o->saving_pct);
    if (room == 0)
        return 1;
    hp_compress_t *c = o->compressor;
    if (c) {
        hp_compress_reset(c); /* zlib: no allocation; returns 0 */
    } else {
        hp_compress_opts_t co = {.algo = HP_COMPRESS_GZIP, .level = o->level};
        int rc = hp_compress_new(&c, &co);
        if (rc < 0)
            return rc;
    }
    uint8_t *buf = hp_malloc(room);
    int rc = -ENOMEM;
    if (buf) {
        hp_compress_io_t io = {
            .next_in = data, .avail_in = len, .next_out = buf, .avail_out = room};
        rc = hp_compress_finish(c, &io);
        if (rc == 0) {
            *out = (hp_amqp_body_t){.ptr = buf, .len = room - io.avail_out, .owned = buf};
            buf = NULL;
        } else if (rc == HP_COMPRESS_FULL) {
            rc = 1; /* larger than the room: not worth sending compressed */
        }
        hp_free(buf);
    }
    if (c != o->compressor)
        hp_compress_free(c);
    else
        hp_compress_reset(c); /* leave no half-made stream in the caller's */
    return rc;
}

/* The common end of every publishing call: data is the body (owned by
 * `owned` when not NULL, which this takes on every path). */
static int prepare(const void *data, size_t len, void *owned, const char *ctype, const opts_t *o,
                   hp_amqp_props_t *props, hp_amqp_body_t *out)
{
    hp_amqp_body_t b = {.ptr = data, .len = len, .owned = owned};
    bool gz = false;
    if (len >= o->compress_min && len > 0) {
        hp_amqp_body_t z;
        int rc = gzip_body(data, len, o, &z);
        if (rc < 0) {
            hp_free(owned);
            *out = (hp_amqp_body_t){0};
            return rc;
        }
        if (rc == 0) {
            hp_free(owned);
            b = z;
            gz = true;
        }
    }
    if (ctype) {
        props->flags |= HP_AMQP_PROP_CONTENT_TYPE;
        props->content_type = hp_amqp_str(ctype);
    }
    if (gz) {
        props->flags |= HP_AMQP_PROP_CONTENT_ENCODING;
        props->content_encoding = hp_amqp_str(HP_AMQP_ENCODING_GZIP);
    } else {
        props->flags &= (uint16_t)~HP_AMQP_PROP_CONTENT_ENCODING;
        props->content_encoding = (hp_amqp_bytes_t){NULL, 0};
    }
    *out = b;
    return 0;
}

/* Empties *out and reads the options, for every publishing call. */
static int publish_opts(const hp_amqp_payload_opts_t *opts, opts_t *o, hp_amqp_body_t *out)
{
    *out = (hp_amqp_body_t){0};
    return opts_get(opts, o);
}

int hp_amqp_payload_encode(const void *data, size_t len, const char *content_type,
                           const hp_amqp_payload_opts_t *opts, hp_amqp_props_t *props,
                           hp_amqp_body_t *out)
{
    opts_t o;
    int rc = publish_opts(opts, &o, out);
    if (rc < 0)
        return rc;
    if (!props || (!data && len))
        return -EINVAL;
    return prepare(data, len, NULL, content_type, &o, props, out);
}

int hp_amqp_payload_json(const struct cJSON *doc, const hp_amqp_payload_opts_t *opts,
                         hp_amqp_props_t *props, hp_amqp_body_t *out)
{
    opts_t o;
    int rc = publish_opts(opts, &o, out);
    if (rc < 0)
        return rc;
    if (!doc || !props)
        return -EINVAL;
    hp_amqp_json_init();
    /* The text comes from cJSON's allocator, which is hp_malloc: it
     * becomes the body's block as it is. cJSON answers NULL when it could
     * not allocate, and also for an item it cannot print (one of type
     * cJSON_Invalid, made by hand): the hook tells which. */
    json_oom = false;
    char *text = cJSON_PrintUnformatted(doc);
    if (!text)
        return json_oom ? -ENOMEM : -EINVAL;
    return prepare(text, strlen(text), text, HP_AMQP_CONTENT_JSON, &o, props, out);
}

/* Parses JSON text of `len` bytes: one value, then only whitespace.
 * Returns the document, or NULL with *err -EBADMSG or -ENOMEM. */
static cJSON *json_parse(const char *text, size_t len, int *err)
{
    hp_amqp_json_init();
    json_oom = false;
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!doc) {
        *err = json_oom ? -ENOMEM : -EBADMSG;
        return NULL;
    }
    /* cJSON stops after the value; RFC 8259 allows only whitespace after
     * it, and a NUL is not whitespace. */
    size_t at = (size_t)(end - text);
    while (at < len && (text[at] == ' ' || text[at] == '\t' || text[at] == '\n' ||
                        text[at] == '\r'))
        at++;
    if (at != len) {
        cJSON_Delete(doc);
        *err = -EBADMSG;
        return NULL;
    }
    return doc;
}

int hp_amqp_payload_json_text(const void *text, size_t len, const hp_amqp_payload_opts_t *opts,
                              hp_amqp_props_t *props, hp_amqp_body_t *out)
{
    opts_t o;
    int rc = publish_opts(opts, &o, out);
    if (rc < 0)
        return rc;
    if (!props || !text)
        return -EINVAL;
    cJSON *doc = json_parse(text, len, &rc);
    if (!doc)
        return rc == -ENOMEM ? rc : -EINVAL;
    cJSON_Delete(doc);
    return prepare(text, len, NULL, HP_AMQP_CONTENT_JSON, &o, props, out);
}

int hp_amqp_payload_msgpack(const void *data, size_t len, const hp_amqp_payload_opts_t *opts,
                            hp_amqp_props_t *props, hp_amqp_body_t *out)
{
    opts_t o;
    int rc = publish_opts(opts, &o, out);
    if (rc < 0)
        return rc;
    if (!props || !data || msgpack_check(data, len) < 0)
        return -EINVAL;
    return prepare(data, len, NULL, HP_AMQP_CONTENT_MSGPACK, &o, props, out);
}

/* ------------------------------------------------------------------ */
/* Consuming                                                           */

/* A property's text with the surrounding spaces cut. */
static hp_amqp_bytes_t trimmed(hp_amqp_bytes_t b)
{
    const char *s = b.ptr;
    uint32_t n = b.len;
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return (hp_amqp_bytes_t){s, n};
}

/* Whether b is `word`, ignoring case. */
static bool is(hp_amqp_bytes_t b, const char *word)
{
    size_t n = strlen(word);
    return b.len == n && strncasecmp(b.ptr, word, n) == 0;
}

/* Whether b ends with `tail`, ignoring case. */
static bool ends_with(hp_amqp_bytes_t b, const char *tail)
{
    size_t n = strlen(tail);
    return b.len >= n && strncasecmp((const char *)b.ptr + b.len - n, tail, n) == 0;
}

/* The stream format content_encoding names: 0 for none, -ENOTSUP for
 * one this module cannot undo. */
static int encoding_of(const hp_amqp_props_t *props)
{
    if (!props || !(props->flags & HP_AMQP_PROP_CONTENT_ENCODING))
        return 0;
    hp_amqp_bytes_t e = trimmed(props->content_encoding);
    if (e.len == 0 || is(e, "identity") || is(e, "utf-8") || is(e, "utf8") || is(e, "binary"))
        return 0;
    if (is(e, "gzip") || is(e, "x-gzip"))
        return HP_COMPRESS_GZIP;
    if (is(e, "deflate"))
        return HP_COMPRESS_ZLIB;
    if (is(e, "br"))
        return HP_COMPRESS_BROTLI;
    return -ENOTSUP;
}

/* The payload type content_type names. */
static int type_of(const hp_amqp_props_t *props)
{
    if (!props || !(props->flags & HP_AMQP_PROP_CONTENT_TYPE) || !props->content_type.len)
        return HP_AMQP_PAYLOAD_BYTES;
    hp_amqp_bytes_t t = props->content_type;
    const char *semi = memchr(t.ptr, ';', t.len);
    if (semi)
        t.len = (uint32_t)(semi - (const char *)t.ptr);
    t = trimmed(t);
    if (is(t, "application/json") || is(t, "text/json") ||
        (t.len > 17 && strncasecmp(t.ptr, "application/", 12) == 0 && ends_with(t, "+json")))
        return HP_AMQP_PAYLOAD_JSON;
    if (is(t, HP_AMQP_CONTENT_MSGPACK) || is(t, "application/x-msgpack") ||
        is(t, "application/vnd.msgpack"))
        return HP_AMQP_PAYLOAD_MSGPACK;
    return HP_AMQP_PAYLOAD_BYTES;
}

/* The first room to inflate into: the gzip trailer's size (its ISIZE,
 * the length modulo 2^32) when it is believable, else four times the
 * input; never more than `cap`. A wrong guess costs a reallocation or
 * some unused room, never more than cap. */
static size_t first_room(int algo, const uint8_t *z, size_t len, size_t cap)
{
    size_t room = len < (SIZE_MAX - INFLATE_MIN_ROOM) / 4 ? 4 * len + INFLATE_MIN_ROOM : cap;
    if (algo == HP_COMPRESS_GZIP && len >= 18) { /* 10 header + 8 trailer bytes */
        const uint8_t *t = z + len - 4;
        uint64_t isize = (uint64_t)t[0] | (uint64_t)t[1] << 8 | (uint64_t)t[2] << 16 |
                         (uint64_t)t[3] << 24;
        /* + 1: the stream's end shows without a regrowth. */
        if (isize / DEFLATE_MAX_RATIO <= len)
            room = isize < INFLATE_LEAST_ROOM ? INFLATE_LEAST_ROOM : (size_t)isize + 1;
    }
    return room < cap ? room : cap;
}

/* Inflates z[0, len) in `algo` into a block of its own, of at most
 * max_body + 1 bytes. Returns 0 with *buf (owned) and *n set, -EMSGSIZE
 * when the stream inflates past max_body, -EBADMSG for a corrupt or
 * truncated stream or bytes after its end, -ENOMEM. */
static int inflate_body(int algo, const uint8_t *z, size_t len, uint64_t max_body, uint8_t **buf,
                        size_t *n)
{
    /* The room never needs more than one byte past the limit: the
     * decompressor writes that byte to show that the limit was passed. */
    size_t cap = max_body < SIZE_MAX ? (size_t)max_body + 1 : SIZE_MAX;
    hp_decompress_opts_t dopts = {.algo = (hp_compress_algo_t)algo, .max_out = max_body};
    hp_decompress_t *d;
    int rc = hp_decompress_new(&d, &dopts);
    if (rc < 0)
        return rc;
    size_t size = first_room(algo, z, len, cap), used = 0;
    uint8_t *out = hp_malloc(size);
    if (!out) {
        hp_decompress_free(d);
        return -ENOMEM;
    }
    hp_compress_io_t io = {.next_in = z, .avail_in = len, .next_out = out, .avail_out = size};
    for (;;) {
        rc = hp_decompress_feed(d, &io);
        used = size - io.avail_out;
        if (rc != HP_DECOMPRESS_FULL)
            break;
        if (size == cap) {
            /* Cannot happen: the decoder reports -EMSGSIZE before the
             * room past the limit fills. Kept as a guard against a loop. */
            rc = -EMSGSIZE;
            break;
        }
        /* Double the room (fewer than 30 rounds up to 128 MiB). */
        size_t grown = size > cap / 2 ? cap : 2 * size;
        uint8_t *p = hp_realloc(out, grown);
        if (!p) {
            rc = -ENOMEM;
            break;
        }
        out = p;
        size = grown;
        io.next_out = out + used;
        io.avail_out = size - used;
    }
    hp_decompress_free(d);
    if (rc == HP_DECOMPRESS_END && io.avail_in == 0) {
        *buf = out;
        *n = used;
        return 0;
    }
    hp_free(out);
    if (rc == HP_DECOMPRESS_END || rc == 0)
        return -EBADMSG; /* bytes after the stream's end, or it never ended */
    return rc;
}

int hp_amqp_payload_decode(const hp_amqp_props_t *props, const void *body, size_t len,
                           const hp_amqp_payload_opts_t *opts, hp_amqp_payload_t *out)
{
    *out = (hp_amqp_payload_t){0};
    opts_t o;
    int rc = opts_get(opts, &o);
    if (rc < 0)
        return rc;
    if (!body && len)
        return -EINVAL;
    int algo = encoding_of(props);
    if (algo < 0)
        return algo;

    hp_amqp_payload_t p = {.type = type_of(props), .ptr = body, .len = len};
    if (algo) {
        uint8_t *buf = NULL;
        rc = inflate_body(algo, body, len, o.max_body, &buf, &p.len);
        if (rc < 0)
            return rc;
        p.ptr = p.buf = buf;
        p.inflated = true;
    } else if (len > o.max_body) {
        return -EMSGSIZE;
    }

    if (p.type == HP_AMQP_PAYLOAD_JSON) {
        p.json = json_parse(p.ptr ? p.ptr : "", p.len, &rc);
        if (!p.json)
            goto fail;
    } else if (p.type == HP_AMQP_PAYLOAD_MSGPACK) {
        rc = msgpack_check(p.ptr, p.len);
        if (rc < 0)
            goto fail;
        msgpack_unpacked *u = hp_malloc(sizeof(*u));
        rc = -ENOMEM;
        if (!u)
            goto fail;
        p.unpacked = u;
        msgpack_unpacked_init(u);
        size_t off = 0;
        msgpack_unpack_return r = msgpack_unpack_next(u, p.ptr, p.len, &off);
        if (r != MSGPACK_UNPACK_SUCCESS || off != p.len) {
            /* The check above leaves only a failed allocation inside
             * msgpack-c; anything else would be a disagreement between
             * the two, and the body is refused. */
            rc = r == MSGPACK_UNPACK_NOMEM_ERROR ? -ENOMEM : -EBADMSG;
            goto fail;
        }
        p.msgpack = &u->data;
    }
    *out = p;
    return 0;

fail:
    hp_amqp_payload_free(&p);
    return rc;
}

void hp_amqp_payload_free(hp_amqp_payload_t *p)
{
    if (!p)
        return;
    cJSON_Delete(p->json);
    if (p->unpacked) {
        msgpack_unpacked_destroy(p->unpacked);
        hp_free(p->unpacked);
    }
    hp_free(p->buf);
    *p = (hp_amqp_payload_t){0};
}

/* ------------------------------------------------------------------ */
/* cJSON helpers                                                       */

int hp_amqp_json_add_int64(struct cJSON *parent, const char *key, int64_t v)
{
    if (!parent || (cJSON_IsObject(parent) ? !key : !cJSON_IsArray(parent)))
        return -EINVAL;
    hp_amqp_json_init();
    char text[24]; /* "-9223372036854775808" and a NUL */
    snprintf(text, sizeof text, "%" PRId64, v);
    if (cJSON_IsObject(parent))
        return cJSON_AddRawToObject(parent, key, text) ? 0 : -ENOMEM;
    cJSON *item = cJSON_CreateRaw(text);
    if (!item)
        return -ENOMEM;
    if (!cJSON_AddItemToArray(parent, item)) {
        cJSON_Delete(item);
        return -ENOMEM;
    }
    return 0;
}

/* 2^53 - 1: every integer up to it has a double of its own, so a double
 * in this range came from exactly one integer text. */
#define EXACT_MAX 9007199254740991.0

int hp_amqp_json_get_int64(const struct cJSON *item, int64_t *out)
{
    if (cJSON_IsRaw(item) && item->valuestring) {
        const char *s = item->valuestring;
        if (!(*s == '-' || (*s >= '0' && *s <= '9')))
            return -ERANGE;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno == ERANGE || *end != '\0')
            return -ERANGE;
        *out = v;
        return 0;
    }
    if (!cJSON_IsNumber(item))
        return -EINVAL;
    double d = item->valuedouble;
    if (!(fabs(d) <= EXACT_MAX) || d != trunc(d))
        return -ERANGE;
    *out = (int64_t)d;
    return 0;
}
