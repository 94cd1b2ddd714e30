/*
 * amqp_payload.h - JSON and MessagePack message bodies, gzip-compressed
 * when that pays, for the AMQP client (amqp.h).
 *
 * Publishing: hp_amqp_payload_json (a cJSON document), _json_text (JSON
 * text, checked), _msgpack (MessagePack bytes, checked) or _encode (any
 * bytes) fill an hp_amqp_body_t to publish and set the content_type and
 * content_encoding of the message's properties. A body of at least
 * compress_min bytes (1 KiB) is gzip-compressed, and sent compressed only
 * when that saves at least min_saving_pct (10 %) of it; then
 * content_encoding is "gzip".
 *
 *     hp_amqp_props_t props = {.flags = HP_AMQP_PROP_DELIVERY_MODE, .delivery_mode = 2};
 *     hp_amqp_body_t body;
 *     if (hp_amqp_payload_json(doc, NULL, &props, &body) == 0) {
 *         hp_amqp_msg_t m = {.routing_key = "jobs", .props = &props,
 *                            .body = body.ptr, .len = body.len};
 *         hp_amqp_publish(ch, &m, on_confirm, arg, NULL);
 *         hp_amqp_body_free(&body);          (publish copied it)
 *     }
 *
 * Consuming: hp_amqp_payload_decode takes a delivery's properties and
 * body, inflates it when its content_encoding says so (never past
 * max_body, 128 MiB: a small body that inflates without bound is refused
 * with -EMSGSIZE having allocated at most max_body + 1 bytes), and parses
 * it by content_type: a cJSON document for JSON, a msgpack_object for
 * MessagePack, the bytes alone for anything else.
 *
 * The libraries are Debian's cJSON (libcjson) and msgpack-c (libmsgpackc);
 * this header names their types only as incomplete structs, so it compiles
 * without theirs. To use a document, include <cjson/cJSON.h> or
 * <msgpack.h> (link: pkg-config hotpath, whose Libs.private name both).
 *
 * cJSON's rules, which this module follows and its users should know
 * (docs/benchmarks.md, "JSON library for AMQP bodies"):
 *   - Numbers are doubles. An integer beyond 2^53 is not exact, and
 *     cJSON's printer may drop the last digit of a 16-digit one: publish
 *     64-bit integers with hp_amqp_json_add_int64 (exact decimal text on
 *     the wire), and read them back with hp_amqp_json_get_int64, which
 *     refuses (-ERANGE) what a double cannot hold exactly instead of
 *     rounding. MessagePack carries 64-bit integers exactly both ways.
 *   - Look keys up with cJSON_GetObjectItemCaseSensitive: cJSON_GetObject-
 *     Item ignores case. Duplicate keys are kept; a lookup finds the first.
 *     A \u0000 ends a string; invalid UTF-8 passes through.
 *   - cJSON's allocator hooks are process-wide. The first JSON call of
 *     this module (or hp_amqp_json_init, for a program that wants it at
 *     start-up) sets them, once, to hp_malloc/hp_free, so documents are
 *     counted and allocation failures can be injected. hp_free is free(),
 *     so documents made before with cJSON's default allocator stay
 *     compatible; a program that installs hooks of its own must not mix
 *     them with this module.
 *
 * Threads: any thread, each on its own documents and buffers; no call
 * keeps state between calls (cJSON writes its process-wide error pointer,
 * cJSON_GetErrorPtr, on every parse: this module never reads it, and its
 * value is meaningless under concurrent parses). Nothing here blocks or
 * calls back.
 *
 * Errors are -errno: -EINVAL for invalid arguments or input to publish,
 * -EBADMSG for a body that is not what its properties say (a corrupt or
 * truncated compressed stream, malformed JSON or MessagePack, bytes after
 * the value), -EMSGSIZE past max_body, -ENOTSUP for a content_encoding
 * this module cannot undo, -ENOMEM.
 */
#ifndef HOTPATH_AMQP_PAYLOAD_H
#define HOTPATH_AMQP_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hotpath/amqp.h"
#include "hotpath/common.h"
#include "hotpath/compress.h"

struct cJSON;          /* <cjson/cJSON.h> */
struct msgpack_object; /* <msgpack.h> */

/* The content types and encoding this module writes. */
#define HP_AMQP_CONTENT_JSON "application/json"
#define HP_AMQP_CONTENT_MSGPACK "application/msgpack"
#define HP_AMQP_ENCODING_GZIP "gzip"

/* compress_min that turns compression off. */
#define HP_AMQP_PAYLOAD_NO_COMPRESS SIZE_MAX

/* Parameters. A zero field means its default, so NULL or a zeroed struct
 * asks for all of them.
 *
 *   compress_min    publish: bodies of at least this many bytes are
 *                   compressed (default 1024); HP_AMQP_PAYLOAD_NO_COMPRESS:
 *                   never.
 *   min_saving_pct  publish: the compressed body is sent only if it is at
 *                   least this many percent smaller, 1..99 (default 10:
 *                   at most 90 % of the original), else the original.
 *   level           publish: zlib level 1..9 (default 6).
 *   compressor      publish: a GZIP hp_compress_t of the caller's to use
 *                   (reset before and after each use; its level wins
                   over `level`; its format is not checked),
 *                   saving the ~270 KiB zlib state made and freed per
 *                   compressed body otherwise. Borrowed. NULL: none.
 *   max_body        decode: the largest body parsed, in bytes (default
 *                   128 MiB, the client's largest delivery): a compressed
 *                   body that inflates past it, or a plain one longer, is
 *                   -EMSGSIZE. A parsed document takes tens of times its
 *                   text in memory (a cJSON node per value): lower it for
 *                   publishers you do not trust. */
typedef struct hp_amqp_payload_opts {
    size_t compress_min;
    unsigned min_saving_pct;
    int level;
    hp_compress_t *compressor;
    uint64_t max_body;
} hp_amqp_payload_opts_t;

/* ---- publishing ---- */

/* A body to publish: ptr/len go into hp_amqp_msg_t. `owned` is the block
 * that ptr points into when this module made it (the compressed bytes, or
 * a document's text), released by hp_amqp_body_free; NULL when ptr is the
 * caller's own input (hp_amqp_payload_encode, _json_text and _msgpack
 * sending it as it is), which must then outlive the publish call. */
typedef struct hp_amqp_body {
    const void *ptr;
    size_t len;
    void *owned; /* owned */
} hp_amqp_body_t;

/* Releases what body owns and empties it. An empty body, or one already
 * freed, is fine. */
HP_EXPORT void hp_amqp_body_free(hp_amqp_body_t *body);

/* Prepares `len` bytes at `data` (borrowed; NULL when len is 0) for
 * publishing: *out is them as they are, or gzip-compressed when they are
 * at least compress_min long and compression saves min_saving_pct. In
 * `props` (in/out, the caller's), sets content_type to `content_type`
 * (NULL: leaves it as it is) and sets content_encoding to "gzip" when
 * compressed, removing it otherwise; other fields are left alone. The
 * strings props then points to are constants or the caller's. Returns 0,
 * -EINVAL for opts out of range, -ENOMEM (*out is then empty, props
 * untouched). */
HP_EXPORT int hp_amqp_payload_encode(const void *data, size_t len, const char *content_type,
                                     const hp_amqp_payload_opts_t *opts, hp_amqp_props_t *props,
                                     hp_amqp_body_t *out);

/* Prints a cJSON document (borrowed, unchanged) as compact JSON and
 * prepares it as hp_amqp_payload_encode does, with content_type
 * "application/json". *out owns the text (or its compressed form).
 * Returns 0, -EINVAL (doc NULL, an item cJSON cannot print, or opts as
 * above), -ENOMEM. */
HP_EXPORT int hp_amqp_payload_json(const struct cJSON *doc, const hp_amqp_payload_opts_t *opts,
                                   hp_amqp_props_t *props, hp_amqp_body_t *out);

/* JSON text of the caller's (borrowed, no NUL needed): checked to be one
 * JSON value (whitespace around it allowed, nothing else), then prepared
 * as hp_amqp_payload_encode does with content_type "application/json".
 * The text is sent as it is, so its numbers keep every digit. Returns 0,
 * -EINVAL when it is not JSON, -ENOMEM. */
HP_EXPORT int hp_amqp_payload_json_text(const void *text, size_t len,
                                        const hp_amqp_payload_opts_t *opts, hp_amqp_props_t *props,
                                        hp_amqp_body_t *out);

/* MessagePack bytes of the caller's (borrowed: an msgpack_sbuffer's data
 * and size, say): checked to be exactly one complete object, then
 * prepared as hp_amqp_payload_encode does with content_type
 * "application/msgpack". Returns 0, -EINVAL when they are not, -ENOMEM. */
HP_EXPORT int hp_amqp_payload_msgpack(const void *data, size_t len,
                                      const hp_amqp_payload_opts_t *opts, hp_amqp_props_t *props,
                                      hp_amqp_body_t *out);

/* ---- consuming ---- */

/* What a decoded body is. */
enum {
    HP_AMQP_PAYLOAD_BYTES = 0, /* no content_type this module parses: the bytes alone */
    HP_AMQP_PAYLOAD_JSON,      /* application/json, text/json, application/<x>+json */
    HP_AMQP_PAYLOAD_MSGPACK,   /* application/msgpack, application/x-msgpack,
                                  application/vnd.msgpack */
};

/* A decoded body. Owned by the caller from a successful decode to
 * hp_amqp_payload_free.
 *
 * ptr/len is the body after decompression: the bytes decode was given when
 * the body was not compressed (borrowed: a delivery's body is valid only
 * during its callback), else a block this payload owns. json is the
 * document (owned by the payload; to keep it past hp_amqp_payload_free,
 * take the pointer and set json to NULL, then free it with cJSON_Delete).
 * msgpack is the root object; it lives in memory the payload owns, but
 * its strings, binaries and extensions point into ptr, so it is valid as
 * long as both the payload and ptr are. */
typedef struct hp_amqp_payload {
    int type;                             /* HP_AMQP_PAYLOAD_* */
    bool inflated;                        /* ptr is the inflated body */
    const void *ptr;
    size_t len;
    struct cJSON *json;                   /* HP_AMQP_PAYLOAD_JSON */
    const struct msgpack_object *msgpack; /* HP_AMQP_PAYLOAD_MSGPACK */
    void *buf, *unpacked;                 /* private: what hp_amqp_payload_free releases */
} hp_amqp_payload_t;

/* Decodes a message body `len` bytes at `body` (borrowed) whose
 * properties are `props` (borrowed; NULL: none), into *out.
 *
 * content_encoding: absent, empty or "identity" (and the character-set
 * names some clients misplace there: "utf-8", "utf8", "binary") is
 * plain; "gzip" (or "x-gzip"), "deflate" (a zlib stream, as in HTTP) and
 * "br" are inflated, to at most max_body bytes; anything else is -ENOTSUP
 * (the bytes cannot be read). A compressed stream must end exactly at the
 * body's end. content_type picks the parser (its parameters, such as
 * "; charset=utf-8", are ignored, and case does not matter); a body of
 * another or no content_type is returned as bytes, type
 * HP_AMQP_PAYLOAD_BYTES. JSON must be one value with nothing but
 * whitespace after it; MessagePack exactly one object.
 *
 * Returns 0 with *out filled, or -ENOTSUP, -EBADMSG, -EMSGSIZE, -ENOMEM
 * (see the top of this file) with *out empty (hp_amqp_payload_free on it
 * does nothing). */
HP_EXPORT int hp_amqp_payload_decode(const hp_amqp_props_t *props, const void *body, size_t len,
                                     const hp_amqp_payload_opts_t *opts, hp_amqp_payload_t *out);

/* Releases what p owns (the inflated body, the JSON document, the
 * MessagePack objects) and empties it. NULL and empty payloads are
 * fine. */
HP_EXPORT void hp_amqp_payload_free(hp_amqp_payload_t *p);

/* ---- cJSON helpers ---- */

/* Sets cJSON's process-wide allocator hooks to hp_malloc/hp_free, once
 * (later calls do nothing). The JSON functions here call it themselves;
 * call it at start-up to have documents built before them counted too. */
HP_EXPORT void hp_amqp_json_init(void);

/* Adds the integer v to `parent`, an object (under `key`, NUL-terminated,
 * copied) or an array (key NULL, appended), as its exact decimal text
 * (a cJSON raw item): cJSON's own numbers are doubles. Returns 0, -EINVAL
 * (parent NULL, not an object or array, or key missing for an object),
 * -ENOMEM (parent unchanged). */
HP_EXPORT int hp_amqp_json_add_int64(struct cJSON *parent, const char *key, int64_t v);

/* Reads an integer from a cJSON item exactly: a number whose double value
 * is integral and within +-(2^53 - 1), where every integer text maps to a
 * distinct double, or a raw item holding a decimal integer (as
 * hp_amqp_json_add_int64 makes). Returns 0 with *out set, -ERANGE for a
 * number beyond that range or not integral (a received 2^63 - 1 is
 * refused, not rounded), -EINVAL for NULL or an item of another type. */
HP_EXPORT int hp_amqp_json_get_int64(const struct cJSON *item, int64_t *out);

#endif
